//! The reverse pass. One code path serves first and higher order: backward rules run as
//! ordinary recorded ops when `create_graph` is set, and under `no_grad` otherwise (nothing of
//! the backward pass is kept).
use crate::var::{BackwardCtx, GradModeGuard, Var};
use crate::{Error, Result};
use std::collections::HashMap;
use tessera_tensor::Tensor;

/// Nodes reachable from `roots` through vars that require grad, inputs before outputs.
fn topo_order(roots: &[&Var]) -> Vec<Var> {
    let mut order = Vec::new();
    let mut visited: HashMap<usize, ()> = HashMap::new();
    // Iterative post-order DFS: deep graphs must not overflow the stack.
    let mut stack: Vec<(Var, bool)> = roots
        .iter()
        .filter(|v| v.requires_grad())
        .map(|v| ((*v).clone(), false))
        .collect();
    while let Some((v, expanded)) = stack.pop() {
        if expanded {
            order.push(v);
            continue;
        }
        if visited.insert(v.key(), ()).is_some() {
            continue;
        }
        stack.push((v.clone(), true));
        if let Some(f) = &v.0.grad_fn {
            for i in f.inputs.iter().filter(|i| i.requires_grad()) {
                if !visited.contains_key(&i.key()) {
                    stack.push((i.clone(), false));
                }
            }
        }
    }
    order
}

/// Propagates `seeds` back to every node in `targets`; returns their gradients by key.
fn propagate(
    seeds: Vec<(Var, Var)>,
    targets: &HashMap<usize, ()>,
    create_graph: bool,
) -> Result<HashMap<usize, Var>> {
    let _mode = GradModeGuard::new(create_graph);
    let roots: Vec<&Var> = seeds.iter().map(|(v, _)| v).collect();
    let order = topo_order(&roots);
    // A node is needed if it is a target or leads to one.
    let mut needed: HashMap<usize, bool> = HashMap::new();
    for v in &order {
        let leads = v.0.grad_fn.as_ref().is_some_and(|f| {
            f.inputs
                .iter()
                .any(|i| needed.get(&i.key()).copied().unwrap_or(false))
        });
        needed.insert(v.key(), targets.contains_key(&v.key()) || leads);
    }
    let mut grads: HashMap<usize, Var> = HashMap::new();
    for (v, g) in seeds {
        accumulate(&mut grads, &v, g)?;
    }
    let mut found = HashMap::new();
    for v in order.iter().rev() {
        let Some(g) = grads.remove(&v.key()) else {
            continue;
        };
        if targets.contains_key(&v.key()) {
            found.insert(v.key(), g.clone());
        }
        let Some(f) = &v.0.grad_fn else { continue };
        let needs: Vec<bool> = f
            .inputs
            .iter()
            .map(|i| i.requires_grad() && needed[&i.key()])
            .collect();
        if !needs.iter().any(|&n| n) {
            continue;
        }
        let ctx = BackwardCtx {
            inputs: &f.inputs,
            output: v,
            needs: &needs,
        };
        let input_grads = (f.backward)(&ctx, &g)?;
        for ((input, need), ig) in f.inputs.iter().zip(&needs).zip(input_grads) {
            if let (true, Some(ig)) = (need, ig) {
                if ig.shape() != input.shape() {
                    return Err(Error::BackwardShape {
                        op: f.name,
                        expected: input.shape().clone(),
                        got: ig.shape().clone(),
                    });
                }
                accumulate(&mut grads, input, ig)?;
            }
        }
    }
    Ok(found)
}

fn accumulate(grads: &mut HashMap<usize, Var>, v: &Var, g: Var) -> Result<()> {
    let g = match grads.remove(&v.key()) {
        Some(prev) => prev.add(&g)?,
        None => g,
    };
    grads.insert(v.key(), g);
    Ok(())
}

fn seeds(outputs: &[&Var], grad_outputs: Option<&[Var]>) -> Result<Vec<(Var, Var)>> {
    outputs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let g = match grad_outputs {
                Some(gs) => gs.get(i).cloned().ok_or(Error::GradOutputs {
                    outputs: outputs.len(),
                    given: gs.len(),
                })?,
                None => Var::constant(Tensor::ones(o.shape().clone(), o.value().device())?),
            };
            Ok(((*o).clone(), g))
        })
        .collect()
}

/// Gradients of `outputs` (weighted by `grad_outputs`, ones by default) with respect to
/// `inputs`, like `torch.autograd.grad`. With `create_graph` the returned vars are recorded and
/// can be differentiated again; without it they are constants and no backward graph is kept.
/// An input the outputs do not depend on gets a zero gradient.
pub fn grad(
    outputs: &[&Var],
    inputs: &[&Var],
    grad_outputs: Option<&[Var]>,
    create_graph: bool,
) -> Result<Vec<Var>> {
    let targets: HashMap<usize, ()> = inputs.iter().map(|v| (v.key(), ())).collect();
    let mut found = propagate(seeds(outputs, grad_outputs)?, &targets, create_graph)?;
    inputs
        .iter()
        .map(|v| match found.remove(&v.key()) {
            // The same var may be listed twice.
            Some(g) => {
                found.insert(v.key(), g.clone());
                Ok(g)
            }
            None => Ok(Var::constant(Tensor::zeros(
                v.shape().clone(),
                v.value().device(),
            )?)),
        })
        .collect()
}

impl Var {
    /// Accumulates d(self)/d(leaf) into every leaf that requires grad (and every var that called
    /// `retain_grad`), like `tensor.backward()`. The backward pass itself is not recorded.
    pub fn backward(&self) -> Result<()> {
        self.backward_with(None)
    }
    /// `backward` seeded with `grad_output` instead of ones.
    pub fn backward_with(&self, grad_output: Option<Var>) -> Result<()> {
        let order = topo_order(&[self]);
        let keep: Vec<&Var> = order
            .iter()
            .filter(|v| v.is_leaf() || *v.0.retains_grad.lock().expect("grad lock"))
            .collect();
        let targets: HashMap<usize, ()> = keep.iter().map(|v| (v.key(), ())).collect();
        let go = grad_output.map(|g| vec![g]);
        let found = propagate(seeds(&[self], go.as_deref())?, &targets, false)?;
        for v in keep {
            if let Some(g) = found.get(&v.key()) {
                let mut slot = v.0.grad.lock().expect("grad lock");
                *slot = Some(match slot.take() {
                    Some(prev) => prev.add(g.value())?,
                    None => g.value().clone(),
                });
            }
        }
        Ok(())
    }
}
