//! A faithful, stateful stand-in for GitHub's hooks and deliveries endpoints.
