import imageio.v3 as iio
import numpy as np

from ddpm_deploy.images import frame_steps, grid, save_gif, save_png, to_uint8


def test_to_uint8_clips_instead_of_rescaling():
    x = np.array([-5.0, -1.0, 0.0, 1.0, 7.0])
    assert to_uint8(x).tolist() == [0, 0, 128, 255, 255]  # no per-image min-max stretch


def test_grid_layout():
    imgs = np.stack([np.full((1, 28, 28), v) for v in np.linspace(-1, 1, 16)])
    g = grid(imgs, pad=2)
    assert g.shape == (4 * 30 + 2, 4 * 30 + 2) and g.dtype == np.uint8
    assert g[2, 2] == 0 and g[-3, -3] == 255
    big = grid(imgs, pad=2, scale=3)
    assert big.shape == (3 * g.shape[0], 3 * g.shape[1])
    assert (big[::3, ::3] == g).all()


def test_png_and_gif_round_trip(tmp_path):
    frames = [np.full((10, 10), i * 20, np.uint8) for i in range(9)]
    save_gif(tmp_path / "a.gif", frames)
    back = iio.imread(tmp_path / "a.gif", index=None)
    assert len(back) == 9
    durations = [iio.immeta(tmp_path / "a.gif", index=i)["duration"] for i in range(9)]
    assert durations[:-1] == [50] * 8
    assert durations[-1] == 50 * (1 + 3)  # last frame held for a third of the count, as in the seed
    save_png(tmp_path / "a.png", frames[3])
    assert iio.imread(tmp_path / "a.png").tolist() == frames[3].tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "a.png"]  # no temp files left


def test_frame_steps_spread_and_include_last():
    steps = frame_steps(1000, 100)
    assert len(steps) == 100 and 0 in steps and 999 in steps
    assert frame_steps(5, 100) == {0, 1, 2, 3, 4}


def test_an_rgb_grid_and_gif_come_out_in_colour(tmp_path):
    # 4 images of 3 x 5 x 6: red, green, blue, and a grey one, in model space
    imgs = -np.ones((4, 3, 5, 6))
    for i in range(3):
        imgs[i, i] = 1.0
    imgs[3] = 0.0
    g = grid(imgs, pad=1, scale=2)
    assert g.shape == (2 * (2 * 6 + 1), 2 * (2 * 7 + 1), 3) and g.dtype == np.uint8
    assert g[2, 2].tolist() == [255, 0, 0] and g[2, 2 * 8].tolist() == [0, 255, 0]
    assert g[2 * 7, 2].tolist() == [0, 0, 255] and g[2 * 7, 2 * 8].tolist() == [128, 128, 128]
    save_png(tmp_path / "a.png", g)
    assert iio.imread(tmp_path / "a.png").tolist() == g.tolist()
    save_gif(tmp_path / "a.gif", [g, g])
    frame = iio.imread(tmp_path / "a.gif", index=None)[-1][..., :3]
    assert frame[2, 2].tolist() == [255, 0, 0] and frame[2 * 7, 2].tolist() == [0, 0, 255]


def test_pixel_layout_is_grey_hw_or_colour_hwc():
    from ddpm_deploy.images import pixel_layout

    assert pixel_layout(np.zeros((2, 1, 5, 6))).shape == (2, 5, 6)
    assert pixel_layout(np.zeros((2, 3, 5, 6))).shape == (2, 5, 6, 3)
