"""Text for a person at a terminal: aligned columns, dates and durations, and one
line per record for `ketenbus tail`, escaping whatever the bus did not write itself."""
