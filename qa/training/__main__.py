from qa.training.cli import main

main()
