//! A DAG's graph laid out left to right (Sugiyama's layered layout, from the
//! rust-sugiyama crate), as the boxes and curves of an SVG picture; each box is
//! coloured by its task's state in the latest run.

use std::collections::HashMap;

use rust_sugiyama::configure::Config;

/// One task's box: its centre, size, label and state.
pub struct Node {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    pub label: String,
    pub state: String,
}

impl Node {
    pub fn left(&self) -> String {
        format!("{:.1}", self.x - self.width / 2.0)
    }
    pub fn top(&self) -> String {
        format!("{:.1}", self.y - self.height / 2.0)
    }
}

pub struct Graph {
    pub width: f64,
    pub height: f64,
    pub nodes: Vec<Node>,
    /// SVG path data of each edge, a curve from the upstream box's right side to
    /// the downstream box's left side.
    pub edges: Vec<String>,
}

const HEIGHT: f64 = 30.0;
const MARGIN: f64 = 16.0;
/// The room between one layer's widest box and the next layer, where edges run.
const LAYER_GAP: f64 = 48.0;

/// Lays out `tasks` (id, upstream ids) with `states` by task id ("none" where the
/// latest run has no state for it).
pub fn layout(tasks: &[(String, Vec<String>)], states: &HashMap<String, String>) -> Graph {
    let index: HashMap<&str, u32> = tasks
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (id.as_str(), i as u32))
        .collect();
    let width = |label: &str| 24.0 + 7.5 * label.chars().count() as f64;
    // The crate lays out top to bottom; giving it each box turned on its side and
    // turning the result back draws the graph left to right.
    let vertices: Vec<(u32, (f64, f64))> = tasks
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (i as u32, (HEIGHT, width(id))))
        .collect();
    let edges: Vec<(u32, u32)> = tasks
        .iter()
        .flat_map(|(id, upstream)| {
            let to = index[id.as_str()];
            upstream
                .iter()
                .filter_map(|u| index.get(u.as_str()))
                .map(move |from| (*from, to))
        })
        .collect();
    let config = Config {
        vertex_spacing: 28.0,
        ..Config::default()
    };
    let mut nodes: Vec<Option<Node>> = tasks.iter().map(|_| None).collect();
    let (mut total_width, mut offset) = (0.0f64, MARGIN);
    for (placed, _, _) in rust_sugiyama::from_vertices_and_edges(&vertices, &edges, &config) {
        let min_across = placed
            .iter()
            .map(|(_, (x, _))| *x)
            .fold(f64::INFINITY, f64::min);
        // The crate's coordinate along the flow is one value per layer; each layer
        // gets a column as wide as its widest label, and a gap for the edges, so no
        // box touches the next layer's and every edge shows.
        let mut layers: Vec<f64> = placed.iter().map(|(_, (_, along))| *along).collect();
        layers.sort_by(f64::total_cmp);
        layers.dedup_by(|a, b| (*a - *b).abs() < 0.5);
        let layer_of = |along: f64| {
            layers
                .iter()
                .position(|l| (l - along).abs() < 0.5)
                .unwrap_or(0)
        };
        let mut widest = vec![0.0f64; layers.len()];
        for (i, (_, along)) in &placed {
            let l = layer_of(*along);
            widest[l] = widest[l].max(width(&tasks[*i].0));
        }
        let mut left = vec![MARGIN; layers.len()];
        for l in 1..layers.len() {
            left[l] = left[l - 1] + widest[l - 1] + LAYER_GAP;
        }
        let mut bottom: f64 = 0.0;
        for (i, (across, along)) in placed {
            let (id, _) = &tasks[i];
            let node = Node {
                x: left[layer_of(along)] + width(id) / 2.0,
                y: offset + (across - min_across) + HEIGHT / 2.0,
                width: width(id),
                height: HEIGHT,
                label: id.clone(),
                state: states.get(id).cloned().unwrap_or_else(|| "none".into()),
            };
            bottom = bottom.max(node.y + HEIGHT / 2.0);
            total_width = total_width.max(node.x + node.width / 2.0);
            nodes[i] = Some(node);
        }
        offset = bottom + MARGIN * 2.0;
    }
    let nodes: Vec<Node> = nodes.into_iter().flatten().collect();
    let at: HashMap<&str, &Node> = nodes.iter().map(|n| (n.label.as_str(), n)).collect();
    let edges = edges
        .iter()
        .map(|(from, to)| {
            let (a, b) = (
                at[tasks[*from as usize].0.as_str()],
                at[tasks[*to as usize].0.as_str()],
            );
            let (x1, y1) = (a.x + a.width / 2.0, a.y);
            let (x2, y2) = (b.x - b.width / 2.0 - 4.0, b.y);
            let bend = (x2 - x1).abs() / 2.0;
            format!(
                "M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}",
                x1 + bend,
                x2 - bend
            )
        })
        .collect();
    Graph {
        width: total_width + MARGIN,
        height: (offset - MARGIN).max(HEIGHT + 2.0 * MARGIN),
        nodes,
        edges,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, upstream: &[&str]) -> (String, Vec<String>) {
        (id.into(), upstream.iter().map(|s| s.to_string()).collect())
    }

    /// Each edge runs from its upstream box's right side to its downstream box's left
    /// side over a visible length.
    fn every_edge_shows(g: &Graph) {
        for edge in &g.edges {
            let numbers: Vec<f64> = edge
                .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
                .filter_map(|n| n.parse().ok())
                .collect();
            let (x1, x2) = (numbers[0], numbers[numbers.len() - 2]);
            assert!(x2 - x1 >= 30.0, "an edge {edge} is {} long", x2 - x1);
        }
    }

    #[test]
    fn long_labels_keep_their_layers_apart() {
        // The spotify pipeline's chain, whose boxes once touched.
        let tasks = vec![
            task("load_bronze", &[]),
            task("source_freshness", &["load_bronze"]),
            task("dbt_build", &["source_freshness"]),
            task("a_much_longer_task_name_than_the_rest", &["dbt_build"]),
            task("x", &["a_much_longer_task_name_than_the_rest"]),
        ];
        let g = layout(&tasks, &HashMap::new());
        every_edge_shows(&g);
        let by: HashMap<&str, &Node> = g.nodes.iter().map(|n| (n.label.as_str(), n)).collect();
        let gap = |a: &str, b: &str| (by[b].x - by[b].width / 2.0) - (by[a].x + by[a].width / 2.0);
        assert!(gap("source_freshness", "dbt_build") >= LAYER_GAP);
        assert!(gap("a_much_longer_task_name_than_the_rest", "x") >= LAYER_GAP);
    }

    #[test]
    fn upstream_boxes_sit_left_of_downstream_ones_and_none_overlap() {
        let tasks = vec![
            task("extract", &[]),
            task("load_a", &["extract"]),
            task("load_b", &["extract"]),
            task("publish", &["load_a", "load_b"]),
            task("lonely", &[]),
        ];
        let states = HashMap::from([("extract".to_string(), "success".to_string())]);
        let g = layout(&tasks, &states);
        assert_eq!(g.nodes.len(), 5);
        every_edge_shows(&g);
        assert_eq!(g.edges.len(), 4);
        let by: HashMap<&str, &Node> = g.nodes.iter().map(|n| (n.label.as_str(), n)).collect();
        assert!(by["extract"].x < by["load_a"].x);
        assert!(by["load_b"].x < by["publish"].x);
        assert_eq!(by["extract"].state, "success");
        assert_eq!(by["publish"].state, "none");
        for a in &g.nodes {
            assert!(
                a.x - a.width / 2.0 >= 0.0 && a.x + a.width / 2.0 <= g.width,
                "{}",
                a.label
            );
            assert!(
                a.y - a.height / 2.0 >= 0.0 && a.y + a.height / 2.0 <= g.height,
                "{}",
                a.label
            );
            for b in &g.nodes {
                let apart = (a.x - b.x).abs() * 2.0 >= a.width + b.width
                    || (a.y - b.y).abs() * 2.0 >= a.height + b.height;
                assert!(
                    std::ptr::eq(a, b) || apart,
                    "{} overlaps {}",
                    a.label,
                    b.label
                );
            }
        }
    }
}
