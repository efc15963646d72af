from faceatlas.cli import main

main()
