from vsae.cli import main

main()
