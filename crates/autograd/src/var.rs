//! `Var`: a tensor plus the record of how it was computed.
use crate::Result;
use std::cell::Cell;
use std::sync::{Arc, Mutex};
use tessera_tensor::Tensor;

/// What a backward rule sees besides the output gradient.
pub struct BackwardCtx<'a> {
    /// The op's inputs, in the order the op recorded them.
    pub inputs: &'a [Var],
    /// The op's output (differentiable itself, so rules may use it, e.g. tanh′ = 1 − y²).
    pub output: &'a Var,
    /// Which inputs need a gradient; rules return `None` for the others.
    pub needs: &'a [bool],
}

impl BackwardCtx<'_> {
    /// Runs `f` only if input `i` needs a gradient.
    pub fn grad_for(&self, i: usize, f: impl FnOnce() -> Result<Var>) -> Result<Option<Var>> {
        if self.needs[i] {
            f().map(Some)
        } else {
            Ok(None)
        }
    }
}

/// A backward rule: from the output gradient, one gradient per input (None where not needed).
/// Rules are written with `Var` ops, so when the engine records them the gradients can be
/// differentiated again.
pub type BackwardFn = dyn Fn(&BackwardCtx<'_>, &Var) -> Result<Vec<Option<Var>>> + Send + Sync;

pub(crate) struct GradFn {
    pub(crate) name: &'static str,
    pub(crate) inputs: Vec<Var>,
    pub(crate) backward: Box<BackwardFn>,
}

pub(crate) struct Node {
    pub(crate) value: Tensor,
    pub(crate) requires_grad: bool,
    pub(crate) grad_fn: Option<GradFn>,
    /// Gradient accumulated by `backward()` on leaves and on vars that asked to retain it.
    pub(crate) grad: Mutex<Option<Tensor>>,
    pub(crate) retains_grad: Mutex<bool>,
}

impl Drop for Node {
    /// Unlinks the graph behind this node iteratively: the default recursive drop of a long
    /// chain of ops (one stack frame set per node) would overflow the stack.
    fn drop(&mut self) {
        let Some(f) = self.grad_fn.as_mut() else {
            return;
        };
        let mut stack = std::mem::take(&mut f.inputs);
        while let Some(v) = stack.pop() {
            // Only nodes this handle kept alive are dismantled; shared ones just lose a count.
            if let Ok(mut node) = Arc::try_unwrap(v.0) {
                if let Some(f) = node.grad_fn.as_mut() {
                    stack.append(&mut f.inputs);
                }
            }
        }
    }
}

/// A differentiable value. Cloning shares the node; the graph behind a `Var` is freed when the
/// last handle to its output drops.
#[derive(Clone)]
pub struct Var(pub(crate) Arc<Node>);

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = self.0.grad_fn.as_ref().map_or("leaf", |g| g.name);
        write!(
            f,
            "Var({:?}, requires_grad: {}, op: {op})",
            self.0.value, self.0.requires_grad
        )
    }
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops on this thread record the graph.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Restores the previous recording state when dropped.
pub struct GradModeGuard(bool);

impl GradModeGuard {
    /// Sets recording on or off for this thread until the guard drops.
    pub fn new(enabled: bool) -> Self {
        GradModeGuard(GRAD_ENABLED.with(|g| g.replace(enabled)))
    }
}

impl Drop for GradModeGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.0));
    }
}

/// Runs `f` without recording any graph (PyTorch's `torch.no_grad()`).
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = GradModeGuard::new(false);
    f()
}

/// Runs `f` on one of rayon's worker threads (inline when already on one) with this thread's
/// recording state, and returns its result.
///
/// Every CPU kernel forks its work with rayon. Called from a thread outside rayon's pool (a
/// program's main thread), each parallel op is handed to the pool while the caller sleeps until
/// it is done: for small tensors the hand-off costs more than the op. Inside a worker, forks and
/// joins stay within the pool. The models' training steps and generators wrap themselves in
/// this; at SinGAN's coarsest scale it halved the wall time of an epoch on a loaded 2-core
/// machine and removed most of its system time. The other workers poll for work while `f` runs
/// (`tessera_tensor::cpu::run_with_workers_polling`), which took another 11 % off that epoch.
pub fn on_worker_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    let enabled = is_grad_enabled();
    tessera_tensor::cpu::run_with_workers_polling(|| {
        let _guard = GradModeGuard::new(enabled);
        f()
    })
}

impl Var {
    fn node(value: Tensor, requires_grad: bool, grad_fn: Option<GradFn>) -> Var {
        Var(Arc::new(Node {
            value,
            requires_grad,
            grad_fn,
            grad: Mutex::new(None),
            retains_grad: Mutex::new(false),
        }))
    }
    /// A value that is not differentiated (data, labels, masks).
    pub fn constant(value: Tensor) -> Var {
        Var::node(value, false, None)
    }
    /// A leaf whose gradient is wanted (a parameter or an input under study).
    pub fn param(value: Tensor) -> Var {
        Var::node(value, true, None)
    }
    /// Records the result of an op. When recording is on and some input requires a gradient,
    /// the result keeps its inputs and backward rule; otherwise it is a constant.
    pub fn from_op(
        name: &'static str,
        value: Tensor,
        inputs: Vec<Var>,
        backward: impl Fn(&BackwardCtx<'_>, &Var) -> Result<Vec<Option<Var>>> + Send + Sync + 'static,
    ) -> Var {
        if is_grad_enabled() && inputs.iter().any(Var::requires_grad) {
            Var::node(
                value,
                true,
                Some(GradFn {
                    name,
                    inputs,
                    backward: Box::new(backward),
                }),
            )
        } else {
            Var::constant(value)
        }
    }

    pub fn value(&self) -> &Tensor {
        &self.0.value
    }
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }
    pub fn is_leaf(&self) -> bool {
        self.0.grad_fn.is_none()
    }
    /// The name of the op that produced this var, if any.
    pub fn op_name(&self) -> Option<&'static str> {
        self.0.grad_fn.as_ref().map(|g| g.name)
    }
    /// A constant sharing this var's value, cut from the graph.
    pub fn detach(&self) -> Var {
        Var::constant(self.0.value.clone())
    }
    /// The gradient accumulated by [`Var::backward`] (leaves, and vars that called `retain_grad`).
    pub fn grad(&self) -> Option<Tensor> {
        self.0.grad.lock().expect("grad lock").clone()
    }
    pub fn zero_grad(&self) {
        *self.0.grad.lock().expect("grad lock") = None;
    }
    /// Asks `backward()` to store this (non-leaf) var's gradient too.
    pub fn retain_grad(&self) {
        *self.0.retains_grad.lock().expect("grad lock") = true;
    }
    pub(crate) fn key(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }
    pub fn same_node(&self, other: &Var) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
    pub fn shape(&self) -> &tessera_tensor::Shape {
        self.0.value.shape()
    }
    pub fn dims(&self) -> &[usize] {
        self.0.value.dims()
    }
}

impl From<Tensor> for Var {
    fn from(t: Tensor) -> Var {
        Var::constant(t)
    }
}
