"""Tables 1 and 2 of the paper and `table-extra`, read back from finished runs: `results` collects the runs
of a cell, `claims` judges the paper's claims, `paper` holds the paper's numbers, `table1`, `table2` and `extra`
make each table's rows and Markdown, `render` writes and prints, `outcome` sets the exit code. The table commands
themselves (training the cells, then writing what these modules make) are `iwae_cli.tasks.tables`."""
