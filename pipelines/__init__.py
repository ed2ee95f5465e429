"""Pipeline composition: every pipeline the project compiles, by name."""
