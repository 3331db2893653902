from pixelgate.cli.main import main

main()
