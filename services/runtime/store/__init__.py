"""The services' database: engines and migrations, the tables, and many rows in one statement."""
