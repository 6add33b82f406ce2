"""The admin command ``bioauth``: one module per subcommand group, registered in ``main``."""
