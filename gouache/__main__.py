from gouache.cli.main import run

run()
