from textcnn.cli import main

main()
