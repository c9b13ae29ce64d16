from edgeseg.cli.main import entry

entry()
