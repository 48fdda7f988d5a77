"""How a service consumes a topic that anyone may write: one way to subscribe (in batches,
at least once), headers kept raw, a batch read on before it is delivered, a failing
batch waited out or set aside as poison, and the case log read back."""
