from animegan_cli.cli import main

main()
