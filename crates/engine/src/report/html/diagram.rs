//! The path diagram in SVG: per zone, one row per group of target subnets, one lane per leg,
//! one box per hop coloured by its verdict. The hop where the packet dies carries a mark and
//! the entry that decided; what lies beyond it on the lane is faded, since nothing gets there.

use std::fmt::Write;

use super::esc;
use crate::context::count;
use crate::picture::paths::{Column, Hop, Lane, LaneKind, PathDiagram, PathRow, Verdict};

/// Horizontal distance between two columns, and a box's size.
const PITCH: usize = 200;
const BOX_WIDTH: usize = 184;
const BOX_HEIGHT: usize = 40;
/// A lane: its label above, then the boxes.
const LABEL_HEIGHT: usize = 18;
const LANE_HEIGHT: usize = LABEL_HEIGHT + BOX_HEIGHT + 10;
const WIDTH: usize = PITCH * 5 + BOX_WIDTH + 8;
/// Characters that fit on a box's line at 12 px: its first line is bold, so fewer.
const BOX_CHARS: usize = 25;
const BOX_CHARS_BOLD: usize = 22;
/// Target subnets a row's caption names before counting the rest.
const NAMED_SUBNETS: usize = 4;

pub fn render(paths: &PathDiagram, out: &mut String) {
    out.push_str("<section class=\"paths\">\n<h2>Where the packet goes</h2>\n");
    legend(out);
    if paths.zones.is_empty() {
        out.push_str("<p>No subnet of the load balancer could be read, so no path is drawn.</p>\n");
    }
    for zone in &paths.zones {
        let name = zone.zone.as_deref().unwrap_or("zone unknown");
        let _ = write!(
            out,
            "<div class=\"zone\">\n<h3>Zone {} · LB subnet {}</h3>\n",
            esc(name),
            esc(&zone.lb_subnet)
        );
        column_heads(out);
        for row in &zone.rows {
            render_row(row, out);
        }
        out.push_str("</div>\n");
    }
    if !paths.unresolved.is_empty() {
        out.push_str("<h3>Not drawn</h3>\n<ul>\n");
        for line in &paths.unresolved {
            let _ = writeln!(out, "<li>{}</li>", esc(line));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}

fn legend(out: &mut String) {
    out.push_str("<ul class=\"legend\">");
    for (verdict, words) in [
        (Verdict::Pass, "passes"),
        (Verdict::Drop, "the packet dies here"),
        (Verdict::Degraded, "some targets fail"),
        (Verdict::Unknown, "not read"),
        (Verdict::NotCrossed, "nothing to cross"),
    ] {
        let _ = write!(
            out,
            "<li><span class=\"swatch {}\"></span>{words}</li>",
            verdict.as_str()
        );
    }
    out.push_str("<li>→ request · ← reply</li></ul>\n");
}

fn column_heads(out: &mut String) {
    let _ = write!(
        out,
        "<svg width=\"{WIDTH}\" height=\"20\" viewBox=\"0 0 {WIDTH} 20\" aria-hidden=\"true\">"
    );
    for (index, column) in Column::ALL.iter().enumerate() {
        let _ = write!(
            out,
            "<text class=\"head\" x=\"{}\" y=\"15\">{}</text>",
            index * PITCH + 4,
            column.title()
        );
    }
    out.push_str("</svg>\n");
}

fn render_row(row: &PathRow, out: &mut String) {
    let _ = write!(
        out,
        "<div class=\"row {}\">\n<p>{}</p>\n",
        row.verdict().as_str(),
        esc(&caption(row))
    );
    let height = row.lanes.len() * LANE_HEIGHT;
    let _ = writeln!(
        out,
        "<svg width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{}\">",
        esc(&caption(row))
    );
    for (index, lane) in row.lanes.iter().enumerate() {
        render_lane(lane, index * LANE_HEIGHT, out);
    }
    out.push_str("</svg>\n");
    for lane in &row.lanes {
        if let Some(hop) = lane.first_drop() {
            let _ = writeln!(out, "<p class=\"dies\">{}</p>", esc(&death(lane, hop)));
        }
    }
    out.push_str("</div>\n");
}

/// `to subnet-a, subnet-b (us-east-1a): 12 targets`.
fn caption(row: &PathRow) -> String {
    if row.target_subnets.is_empty() {
        return "no target to send to".into();
    }
    let mut named: Vec<&str> = row
        .target_subnets
        .iter()
        .take(NAMED_SUBNETS)
        .map(String::as_str)
        .collect();
    let rest = row.target_subnets.len() - named.len();
    let more = format!("{rest} more");
    if rest > 0 {
        named.push(&more);
    }
    let zones = if row.target_zones.is_empty() {
        String::new()
    } else {
        format!(" ({})", row.target_zones.join(", "))
    };
    format!(
        "to {}{zones}: {}",
        named.join(", "),
        count(row.targets, "target", "targets")
    )
}

/// The sentence under a row: where the packet dies and what decided.
fn death(lane: &Lane, hop: &Hop) -> String {
    let ids = if hop.ids.is_empty() {
        String::new()
    } else {
        format!(" {}", hop.ids.join(", "))
    };
    let mut traffic = lane.traffic.clone();
    if let Some(first) = traffic.get(..1) {
        let upper = first.to_uppercase();
        traffic.replace_range(..1, &upper);
    }
    format!(
        "{traffic} die at the {}{ids}: {}.",
        hop.column.title(),
        hop.note
    )
}

fn render_lane(lane: &Lane, top: usize, out: &mut String) {
    let arrow = if lane.kind == LaneKind::Reply {
        "← "
    } else {
        ""
    };
    let tail = if lane.kind == LaneKind::Reply {
        ""
    } else {
        " →"
    };
    let _ = writeln!(
        out,
        "<text class=\"strong\" x=\"4\" y=\"{}\">{arrow}{}{tail}</text>",
        top + 13,
        esc(&lane.label)
    );
    // Beyond the first drop, in the direction of travel, nothing arrives.
    let order: Vec<usize> = if lane.kind == LaneKind::Reply {
        (0..lane.hops.len()).rev().collect()
    } else {
        (0..lane.hops.len()).collect()
    };
    let mut reached = vec![true; lane.hops.len()];
    let mut dead = false;
    for &index in &order {
        reached[index] = !dead;
        if lane.hops[index].verdict == Verdict::Drop {
            dead = true;
        }
    }
    let box_top = top + LABEL_HEIGHT;
    let middle = box_top + BOX_HEIGHT / 2;
    for index in 1..lane.hops.len() {
        // An edge is travelled when the hop it leaves is reached and lets the packet on.
        let from = if lane.kind == LaneKind::Reply {
            index
        } else {
            index - 1
        };
        let live = reached[from] && lane.hops[from].verdict != Verdict::Drop;
        edge(index, middle, lane.kind == LaneKind::Reply, live, out);
    }
    for (index, hop) in lane.hops.iter().enumerate() {
        render_hop(hop, index, box_top, reached[index], out);
    }
}

/// The line between column `index - 1` and `index`, with its arrowhead on the side travelled to.
fn edge(index: usize, y: usize, backwards: bool, live: bool, out: &mut String) {
    let start = (index - 1) * PITCH + 4 + BOX_WIDTH;
    let end = index * PITCH + 4;
    let class = if live { "" } else { " unreached" };
    let _ = write!(
        out,
        "<line class=\"edge{class}\" x1=\"{start}\" y1=\"{y}\" x2=\"{end}\" y2=\"{y}\"/>"
    );
    let points = if backwards {
        format!(
            "{start},{y} {},{} {},{}",
            start + 7,
            y - 5,
            start + 7,
            y + 5
        )
    } else {
        format!("{end},{y} {},{} {},{}", end - 7, y - 5, end - 7, y + 5)
    };
    let _ = writeln!(out, "<polygon class=\"arrow{class}\" points=\"{points}\"/>");
}

fn render_hop(hop: &Hop, index: usize, top: usize, reached: bool, out: &mut String) {
    let x = index * PITCH + 4;
    let column = hop.column.title();
    let class = format!(
        "hop {}{}",
        hop.verdict.as_str(),
        if reached { "" } else { " unreached" }
    );
    let all_ids = hop.ids.join(", ");
    let title = if all_ids.is_empty() {
        format!("{column}: {}", hop.note)
    } else {
        format!("{column}: {all_ids}: {}", hop.note)
    };
    // The count of the others stays whole; the id gives way.
    let (first, second) = match hop.ids.first() {
        Some(id) => {
            let more = hop.total.saturating_sub(1);
            let first = if more > 0 {
                let suffix = format!(" +{more}");
                let room = BOX_CHARS_BOLD.saturating_sub(suffix.chars().count());
                format!("{}{suffix}", fit(id, room))
            } else {
                fit(id, BOX_CHARS_BOLD)
            };
            (first, hop.note.clone())
        }
        None => (fit(&hop.note, BOX_CHARS_BOLD), String::new()),
    };
    let _ = write!(
        out,
        "<g class=\"{class}\" data-column=\"{}\"><title>{}</title>\
         <rect x=\"{x}\" y=\"{top}\" width=\"{BOX_WIDTH}\" height=\"{BOX_HEIGHT}\" rx=\"5\"/>\
         <text class=\"strong\" x=\"{}\" y=\"{}\">{}</text>",
        column.replace(' ', "-"),
        esc(&title),
        x + 7,
        top + 16,
        esc(&first)
    );
    if !second.is_empty() {
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\">{}</text>",
            x + 7,
            top + 32,
            esc(&fit(&second, BOX_CHARS))
        );
    }
    if hop.verdict == Verdict::Drop && reached {
        let _ = write!(
            out,
            "<circle cx=\"{}\" cy=\"{}\" r=\"9\"/><text class=\"mark\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">✕</text>",
            x + BOX_WIDTH - 2,
            top + 2,
            x + BOX_WIDTH - 2,
            top + 6
        );
    }
    out.push_str("</g>\n");
}

/// A box line cut to what fits, with an ellipsis; the box's title holds the whole text.
fn fit(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_string();
    }
    let cut: String = text.chars().take(chars - 1).collect();
    format!("{}…", cut.trim_end())
}
