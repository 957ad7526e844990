//! Helpers shared by the crate's unit tests.

/// One step of xorshift64 (shifts 13, 7, 17): reproducible randomness
/// without a dependency. Advances `state` and returns its new value.
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
