// The version text `--version` prints, with the git commit when built
// from a checkout: one script for both programs' crates.
include!("../../build/version.rs");
