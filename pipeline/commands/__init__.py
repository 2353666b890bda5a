"""One module per `rewheel` subcommand; each exposes a click command named `command`."""
