"""One module per ``vidllm`` subcommand (``add_arguments`` + ``run``)."""
