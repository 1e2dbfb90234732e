//! Sample webhook payloads written by this project, one per common event, for `hookfwd send` and the fake GitHub.
