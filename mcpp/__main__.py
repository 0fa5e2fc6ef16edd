from mcpp.cli import main

main()
