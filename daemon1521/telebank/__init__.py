"""The bank leg: dialling a telephone bank on an outbound line and relaying
the caller to it (TELEBANK.md). How a bank is reached and driven is data: a
telebank profile (``profiles/*.toml``)."""
