//! Client histories: what clients invoked and what they saw, in virtual time.
