//! How much of a box is in RAM: the report `LockedBox::residency` gives.
#![forbid(unsafe_code)]

/// How many data pages of a box are in RAM (mincore(2), or the platform's
/// equivalent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Residency {
    /// Data pages present in RAM.
    pub resident: usize,
    /// All data pages of the box.
    pub total: usize,
}

impl Residency {
    /// Whether every data page is in RAM.
    pub fn all_resident(&self) -> bool {
        self.resident == self.total
    }
}
