from iwae_cli.cli.main import main

main()
