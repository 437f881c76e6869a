//! Command-line interface: clap types and one module per subcommand.
