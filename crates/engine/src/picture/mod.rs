//! What the HTML report draws, as data: the path diagram (where the packet goes and where it
//! dies) and the alarm window's charts. Built from the diagnosis's context, so it shows the
//! same evaluation the findings rest on; rendered by `report::html`.

pub mod charts;
pub mod paths;

pub use charts::Chart;
pub use paths::PathDiagram;

use crate::context::Context;

#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    pub paths: PathDiagram,
    pub charts: Vec<Chart>,
}

impl Picture {
    pub fn of(ctx: &Context<'_>) -> Self {
        Self {
            paths: PathDiagram::of(ctx),
            charts: charts::charts(ctx),
        }
    }
}

#[cfg(test)]
mod tests;
