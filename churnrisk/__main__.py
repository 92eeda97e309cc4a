from churnrisk.cli import main

main()
