//! Finds dependency cycles with petgraph and names each one by its path.

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

/// Every cycle among `edges` (upstream -> downstream, by index into `nodes`), each as
/// the path that walks it, starting and ending at its first node in `nodes` order.
pub fn find_cycles(node_count: usize, edges: &[(usize, usize)]) -> Vec<Vec<usize>> {
    let mut graph = DiGraph::<(), ()>::with_capacity(node_count, edges.len());
    for _ in 0..node_count {
        graph.add_node(());
    }
    for &(from, to) in edges {
        graph.add_edge(NodeIndex::new(from), NodeIndex::new(to), ());
    }
    let mut cycles = Vec::new();
    for scc in tarjan_scc(&graph) {
        let start = *scc.iter().min().expect("an SCC is never empty");
        let is_cycle = scc.len() > 1 || graph.contains_edge(start, start);
        if !is_cycle {
            continue;
        }
        cycles.push(walk_back_to_start(&graph, &scc, start));
    }
    cycles.sort();
    cycles
}

/// A depth-first walk inside one strongly connected component from `start` back to it.
fn walk_back_to_start(graph: &DiGraph<(), ()>, scc: &[NodeIndex], start: NodeIndex) -> Vec<usize> {
    let mut path = vec![start];
    let mut visited = vec![start];
    loop {
        let here = *path.last().expect("the path starts non-empty");
        let mut next_nodes: Vec<NodeIndex> =
            graph.neighbors(here).filter(|n| scc.contains(n)).collect();
        next_nodes.sort();
        if next_nodes.contains(&start) {
            path.push(start);
            return path.into_iter().map(NodeIndex::index).collect();
        }
        match next_nodes.into_iter().find(|n| !visited.contains(n)) {
            Some(next) => {
                visited.push(next);
                path.push(next);
            }
            None => {
                path.pop();
                if path.is_empty() {
                    // Unreachable for a real SCC; return the component itself.
                    return scc.iter().map(|n| n.index()).collect();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_has_no_cycle() {
        assert!(find_cycles(3, &[(0, 1), (1, 2)]).is_empty());
    }

    #[test]
    fn a_three_node_cycle_is_walked_in_order() {
        assert_eq!(
            find_cycles(4, &[(0, 1), (1, 2), (2, 0), (2, 3)]),
            vec![vec![0, 1, 2, 0]]
        );
    }

    #[test]
    fn a_self_loop_is_a_cycle() {
        assert_eq!(find_cycles(2, &[(1, 1)]), vec![vec![1, 1]]);
    }
}
