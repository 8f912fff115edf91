//! The reverse-mode engine: accumulation, grad modes, detach, retain_grad, create_graph,
//! unused and repeated inputs, errors, and graph lifetime.
mod common;

use common::*;
use std::sync::{Arc, Weak};
use tessera_autograd::{grad, is_grad_enabled, no_grad, Error, GradModeGuard, Var};
use tessera_tensor::Tensor;

fn vals(v: &Var) -> Vec<f32> {
    v.value().to_vec().unwrap()
}
fn grad_vals(v: &Var) -> Vec<f32> {
    v.grad().expect("a gradient").to_vec().unwrap()
}
fn param(v: &[f32]) -> Var {
    Var::param(tensor(v.to_vec(), &[v.len()]))
}
fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

#[test]
fn backward_accumulates_into_leaves_across_calls() {
    let x = param(&[1.0, -2.0, 3.0]);
    let y = x.sqr().unwrap().sum_all().unwrap();
    y.backward().unwrap();
    close(&grad_vals(&x), &[2.0, -4.0, 6.0]);
    y.backward().unwrap();
    close(&grad_vals(&x), &[4.0, -8.0, 12.0]);
    // A different graph over the same leaf adds to the same slot.
    x.sum_all().unwrap().backward().unwrap();
    close(&grad_vals(&x), &[5.0, -7.0, 13.0]);
    x.zero_grad();
    assert!(x.grad().is_none());
    // Seeded backward.
    let z = x.mul_scalar(3.0).unwrap();
    z.backward_with(Some(Var::constant(tensor(vec![1.0, 0.0, -1.0], &[3]))))
        .unwrap();
    close(&grad_vals(&x), &[3.0, 0.0, -3.0]);
    // Intermediates keep no gradient unless asked.
    assert!(z.grad().is_none());
}

#[test]
fn constants_get_no_gradient() {
    let x = param(&[1.0, 2.0]);
    let c = Var::constant(tensor(vec![5.0, 7.0], &[2]));
    let y = x.mul(&c).unwrap().sum_all().unwrap();
    y.backward().unwrap();
    close(&grad_vals(&x), &[5.0, 7.0]);
    assert!(c.grad().is_none());
    assert!(!c.requires_grad());
    // Ops on constants only are constants.
    let k = c.exp().unwrap();
    assert!(!k.requires_grad() && k.is_leaf() && k.op_name().is_none());
}

#[test]
fn no_grad_records_nothing() {
    let x = param(&[0.5, 1.5]);
    assert!(is_grad_enabled());
    let y = no_grad(|| {
        assert!(!is_grad_enabled());
        x.exp().unwrap().mul(&x).unwrap()
    });
    assert!(is_grad_enabled(), "no_grad restores recording");
    assert!(!y.requires_grad());
    assert!(y.is_leaf());
    assert!(y.op_name().is_none());
    // Its value is still computed.
    close(&vals(&y), &[0.5f32.exp() * 0.5, 1.5f32.exp() * 1.5]);
    // Guards nest and restore the previous state.
    {
        let _off = GradModeGuard::new(false);
        {
            let _on = GradModeGuard::new(true);
            assert!(x.exp().unwrap().requires_grad());
        }
        assert!(!is_grad_enabled());
        assert!(!x.exp().unwrap().requires_grad());
    }
    assert!(is_grad_enabled());
    let y = x.exp().unwrap();
    assert_eq!(y.op_name(), Some("exp"));
}

#[test]
fn detach_cuts_the_graph() {
    let x = param(&[2.0, -3.0]);
    let d = x.detach();
    assert!(!d.requires_grad() && d.is_leaf());
    assert!(d.value().same_storage(x.value()), "detach shares the value");
    // y = detach(x)·x: only the second factor is differentiated.
    let y = d.mul(&x).unwrap().sum_all().unwrap();
    let g = grad(&[&y], &[&x], None, false).unwrap();
    close(&vals(&g[0]), &[2.0, -3.0]);
    // A detached intermediate stops gradients to everything before it.
    let z = x
        .exp()
        .unwrap()
        .detach()
        .mul(&x)
        .unwrap()
        .sum_all()
        .unwrap();
    let g = grad(&[&z], &[&x], None, false).unwrap();
    close(&vals(&g[0]), &[2f32.exp(), (-3f32).exp()]);
}

#[test]
fn retain_grad_stores_an_intermediate_gradient() {
    let x = param(&[1.0, 2.0, 3.0]);
    let z = x.mul_scalar(2.0).unwrap();
    let other = x.add_scalar(1.0).unwrap();
    z.retain_grad();
    let y = z.sqr().unwrap().add(&other).unwrap().sum_all().unwrap();
    y.backward().unwrap();
    // dy/dz = 2z, dy/dx = 2z·2 + 1.
    close(&grad_vals(&z), &[4.0, 8.0, 12.0]);
    close(&grad_vals(&x), &[9.0, 17.0, 25.0]);
    assert!(other.grad().is_none());
    y.backward().unwrap();
    close(&grad_vals(&z), &[8.0, 16.0, 24.0]);
}

#[test]
fn create_graph_controls_differentiability_of_gradients() {
    let x = param(&[0.5, -1.0, 2.0]);
    let y = x.powf(3.0).unwrap().sum_all().unwrap();
    let g = grad(&[&y], &[&x], None, false).unwrap();
    close(&vals(&g[0]), &[0.75, 3.0, 12.0]);
    assert!(
        g[0].is_leaf() && !g[0].requires_grad(),
        "constants without create_graph"
    );
    let g = grad(&[&y], &[&x], None, true).unwrap();
    close(&vals(&g[0]), &[0.75, 3.0, 12.0]);
    assert!(
        g[0].requires_grad() && !g[0].is_leaf(),
        "recorded with create_graph"
    );
    // d/dx Σ 3x² = 6x, and the third derivative 6.
    let gg = grad(&[&g[0].sum_all().unwrap()], &[&x], None, true).unwrap();
    close(&vals(&gg[0]), &[3.0, -6.0, 12.0]);
    let ggg = grad(&[&gg[0].sum_all().unwrap()], &[&x], None, false).unwrap();
    close(&vals(&ggg[0]), &[6.0, 6.0, 6.0]);
    // grad() leaves leaf .grad slots alone.
    assert!(x.grad().is_none());
}

#[test]
fn unused_inputs_get_zero_gradients() {
    let x = param(&[1.0, 2.0]);
    let unused = Var::param(tensor(vec![1.0; 6], &[2, 3]));
    let constant = Var::constant(tensor(vec![4.0], &[1]));
    let y = x.sqr().unwrap().sum_all().unwrap();
    for create_graph in [false, true] {
        let g = grad(&[&y], &[&x, &unused, &constant], None, create_graph).unwrap();
        close(&vals(&g[0]), &[2.0, 4.0]);
        assert_eq!(g[1].dims(), &[2, 3]);
        assert_eq!(vals(&g[1]), vec![0.0; 6]);
        assert_eq!(vals(&g[2]), vec![0.0]);
    }
    // An output that does not depend on anything differentiable.
    let c = Var::constant(tensor(vec![1.0], &[1]));
    let g = grad(&[&c], &[&x], None, false).unwrap();
    assert_eq!(vals(&g[0]), vec![0.0, 0.0]);
}

#[test]
fn a_var_used_twice_accumulates() {
    let x = param(&[1.5, -0.5]);
    // y = x·x + x + exp(x)·x
    let y = x
        .mul(&x)
        .unwrap()
        .add(&x)
        .unwrap()
        .add(&x.exp().unwrap().mul(&x).unwrap())
        .unwrap();
    let g = grad(&[&y], &[&x], None, false).unwrap();
    let want: Vec<f32> = [1.5f32, -0.5]
        .iter()
        .map(|&x| 2.0 * x + 1.0 + x.exp() * (1.0 + x))
        .collect();
    close(&vals(&g[0]), &want);
    // The same input listed twice gets its gradient twice.
    let g = grad(&[&y], &[&x, &x], None, false).unwrap();
    close(&vals(&g[0]), &want);
    close(&vals(&g[1]), &want);
    // Several outputs: gradients add up; grad_outputs weight them.
    let (a, b) = (x.sqr().unwrap(), x.mul_scalar(3.0).unwrap());
    let g = grad(&[&a, &b], &[&x], None, false).unwrap();
    close(&vals(&g[0]), &[6.0, 2.0]);
    let w = [
        Var::constant(tensor(vec![1.0, 2.0], &[2])),
        Var::constant(tensor(vec![-1.0, 0.0], &[2])),
    ];
    let g = grad(&[&a, &b], &[&x], Some(&w), false).unwrap();
    close(&vals(&g[0]), &[0.0, -2.0]);
}

#[test]
fn engine_errors_are_typed() {
    let x = param(&[1.0, 2.0]);
    let y = x.sqr().unwrap();
    let err = grad(
        &[&y, &y],
        &[&x],
        Some(&[Var::constant(tensor(vec![1.0, 1.0], &[2]))]),
        false,
    )
    .unwrap_err();
    assert_eq!(
        err,
        Error::GradOutputs {
            outputs: 2,
            given: 1
        }
    );
    // A backward rule returning the wrong shape is caught and named.
    let bad = Var::from_op("bad_op", x.value().clone(), vec![x.clone()], |_, _| {
        Ok(vec![Some(Var::constant(Tensor::zeros([3], CPU)?))])
    });
    match grad(&[&bad], &[&x], None, false).unwrap_err() {
        Error::BackwardShape { op, expected, got } => {
            assert_eq!(op, "bad_op");
            assert_eq!(expected.dims(), &[2]);
            assert_eq!(got.dims(), &[3]);
        }
        e => panic!("unexpected {e:?}"),
    }
    assert!(matches!(bad.backward(), Err(Error::BackwardShape { .. })));
    // Tensor errors pass through with the op and shapes.
    match x.matmul(&x) {
        Err(Error::Tensor(tessera_tensor::Error::ShapeMismatch { op, .. })) => {
            assert_eq!(op, "matmul")
        }
        r => panic!("unexpected {r:?}"),
    }
    assert!(matches!(
        x.transpose(0, 3),
        Err(Error::Tensor(tessera_tensor::Error::InvalidArgument {
            op: "transpose",
            ..
        }))
    ));
}

/// An identity op whose backward rule owns `token`, so the token lives exactly as long as the
/// graph node that records the op.
fn tracked(x: &Var, token: Arc<()>) -> Var {
    Var::from_op(
        "tracked",
        x.value().clone(),
        vec![x.clone()],
        move |_, g| {
            let _keep = &token;
            Ok(vec![Some(g.clone())])
        },
    )
}

#[test]
fn graph_is_freed_when_the_last_handle_drops() {
    let x = param(&[1.0, 2.0, 3.0]);
    let token = Arc::new(());
    let watch: Weak<()> = Arc::downgrade(&token);
    let t = tracked(&x, token);
    let y = t.exp().unwrap().sum_all().unwrap();
    drop(t);
    assert!(watch.upgrade().is_some(), "y still needs the node");
    y.backward().unwrap();
    let g = grad(&[&y], &[&x], None, true).unwrap();
    let y2 = y.clone();
    drop(y);
    assert!(watch.upgrade().is_some(), "a clone of y holds it");
    drop(y2);
    // The recorded gradient exp(t) refers to exp's output, whose input is the tracked node.
    assert!(
        watch.upgrade().is_some(),
        "a create_graph gradient holds it"
    );
    drop(g);
    assert!(
        watch.upgrade().is_none(),
        "graph freed with its last handle"
    );
    // The leaf keeps only a tensor, not the graph.
    assert!(x.grad().is_some());
}

#[test]
fn leaves_do_not_keep_graphs_alive() {
    let x = param(&[1.0, 2.0]);
    let token = Arc::new(());
    let watch = Arc::downgrade(&token);
    {
        let y = tracked(&x, token).sqr().unwrap().sum_all().unwrap();
        y.backward().unwrap();
        let g = grad(&[&y], &[&x], None, true).unwrap();
        let gg = grad(&[&g[0].sum_all().unwrap()], &[&x], None, true).unwrap();
        close(&vals(&gg[0]), &[2.0, 2.0]);
    }
    assert!(watch.upgrade().is_none());
    close(&grad_vals(&x), &[2.0, 4.0]);
}

#[test]
fn deep_graphs_run_and_drop_without_overflowing_the_stack() {
    // 100 000 chained ops: backward and drop both walk the chain without recursion.
    let x = param(&[1.0, 2.0]);
    let token = Arc::new(());
    let watch = Arc::downgrade(&token);
    let mut y = tracked(&x, token);
    for _ in 0..100_000 {
        y = y.affine(1.0, 1e-5).unwrap();
    }
    let s = y.sum_all().unwrap();
    drop(y);
    s.backward().unwrap();
    close(&grad_vals(&x), &[1.0, 1.0]);
    assert!(watch.upgrade().is_some());
    drop(s);
    assert!(watch.upgrade().is_none());
}

#[test]
fn shared_subgraphs_survive_dropping_one_consumer() {
    let x = param(&[1.0, 2.0]);
    let token = Arc::new(());
    let watch = Arc::downgrade(&token);
    let shared = tracked(&x, token).exp().unwrap();
    let a = shared.mul_scalar(2.0).unwrap();
    let b = shared.mul_scalar(3.0).unwrap();
    drop(shared);
    drop(a);
    assert!(watch.upgrade().is_some(), "b still uses the shared part");
    let g = grad(&[&b.sum_all().unwrap()], &[&x], None, false).unwrap();
    close(&vals(&g[0]), &[3.0 * 1f32.exp(), 3.0 * 2f32.exp()]);
    drop(b);
    assert!(watch.upgrade().is_none());
}

#[test]
fn on_worker_thread_runs_on_a_rayon_worker_with_the_callers_recording_state() {
    let x = Var::param(Tensor::ones([300, 300], tessera_tensor::Device::Cpu).unwrap());
    for enabled in [true, false] {
        let _mode = GradModeGuard::new(enabled);
        let (inside, recorded) = tessera_autograd::on_worker_thread(|| {
            let y = x.mul_scalar(2.0).unwrap();
            (rayon::current_thread_index().is_some(), y.requires_grad())
        });
        assert!(inside);
        assert_eq!(recorded, enabled, "recording state carried to the worker");
    }
    // Nested calls run inline on the same worker.
    let same = tessera_autograd::on_worker_thread(|| {
        let outer = rayon::current_thread_index();
        tessera_autograd::on_worker_thread(|| rayon::current_thread_index() == outer)
    });
    assert!(same);
}
