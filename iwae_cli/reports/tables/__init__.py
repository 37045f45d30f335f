"""Tables 1 and 2 of the paper and `table-extra`, read back from finished runs: `results` collects the runs
of a cell, `claims` judges the paper's claims, `paper` holds the paper's numbers, `render` writes and prints,
`outcome` sets the exit code. The table commands themselves are `iwae_cli.tasks.tables`."""
