//! A command-line JSON/text tool whose subcommands are plug-ins found in a directory.
