//! Threads and their synchronisation, like Python's `threading` and `queue`.
#![forbid(unsafe_code)]
