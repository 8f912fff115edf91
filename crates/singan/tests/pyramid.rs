//! The pyramid plan for the reference images' sizes (the table of the reference description).
use tessera_singan::{Error, Pyramid, PyramidConfig};

fn plan(h: usize, w: usize) -> Pyramid {
    Pyramid::plan(h, w, &PyramidConfig::default()).unwrap()
}

#[test]
fn balloons_has_nine_scales_from_25x34() {
    let p = plan(186, 248);
    assert_eq!(p.finest(), 8);
    assert!((p.scale_factor - 0.7781).abs() < 5e-5, "{}", p.scale_factor);
    assert_eq!(
        p.shapes,
        [
            [25, 34],
            [33, 43],
            [42, 56],
            [54, 71],
            [69, 91],
            [88, 117],
            [113, 151],
            [145, 193],
            [186, 248]
        ]
    );
    assert_eq!(p.scale1, 1.0);
}

#[test]
fn reference_images_plan_as_the_reference_does() {
    // (H, W, N, sf, coarsest, finest)
    let table = [
        (188, 250, 9, 0.7992, [26, 34], [188, 250]),
        (250, 250, 10, 0.7943, [25, 25], [250, 250]),
        (366, 585, 8, 0.7948, [25, 40], [157, 250]),
        (380, 572, 8, 0.7887, [26, 38], [167, 250]),
        (120, 80, 6, 0.8238, [38, 26], [120, 80]),
    ];
    for (h, w, n, sf, coarsest, finest) in table {
        let p = plan(h, w);
        assert_eq!(p.finest(), n, "{h}×{w}");
        assert!(
            (p.scale_factor - sf).abs() < 5e-5,
            "{h}×{w}: {}",
            p.scale_factor
        );
        assert_eq!(p.shapes[0], coarsest, "{h}×{w}");
        assert_eq!(p.shapes[n], finest, "{h}×{w}");
    }
    assert!((plan(366, 585).scale1 - 0.4274).abs() < 5e-5);
}

#[test]
fn images_below_the_coarsest_scale_are_refused() {
    for (h, w) in [(20, 300), (24, 24), (25, 1000)] {
        match Pyramid::plan(h, w, &PyramidConfig::default()) {
            Err(Error::ImageTooSmall { height, width, .. }) => assert_eq!((height, width), (h, w)),
            other => panic!("{h}×{w}: {other:?}"),
        }
    }
}
