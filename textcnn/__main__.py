from textcnn.cli import entry

entry()
