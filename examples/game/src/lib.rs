//! A small deterministic grid-world game whose mods are plug-ins, reloaded while it runs.
