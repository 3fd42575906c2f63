"""magma_wino.experiments: the data loaders, the pruning methods (densities reached, masks kept
through fine-tuning, filter pruning), the exact counts of the report, and the ``--quick`` run
of ``magma-wino experiment prune`` (offline, deterministic, and the network really learns)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from magma_wino import cli, cost, reference  # noqa: E402
from magma_wino import experiments as E  # noqa: E402
from magma_wino.accuracy import rel_err, tolerance  # noqa: E402
from magma_wino.experiments import network as N  # noqa: E402
from magma_wino.experiments import prune as P  # noqa: E402
from magma_wino.pruning import kept_count  # noqa: E402
from magma_wino.torch import WinogradDomainConv2d  # noqa: E402

#: The --quick run's dense test accuracy must exceed this: 10 classes, chance is 0.1; in 4 epochs
#: the spatial network reaches ~0.94 and the Winograd-ReLU one (trained at 0.01) ~0.88, a broken
#: gradient stays near chance.
QUICK_DENSE_ACCURACY_FLOOR = 0.8

TINY = (4, 4, "M", 8, "M")  # a small network for the unit tests: 16×16 → 4×4 feature maps


@pytest.fixture(scope="module")
def digits() -> E.Dataset:
    return E.load_digits()


@pytest.fixture(scope="module")
def small(digits) -> E.Dataset:
    return digits.subset(192, 64)


def _cfg(**kw) -> E.PruneConfig:
    base = {"widths": TINY, "tiles": (2,), "epochs": 1, "finetune_epochs": 1, "batch_size": 32}
    base.update(kw)
    return E.PruneConfig(**base).check()


def _trained(data: E.Dataset, kind: str = "spatial", m: int = 2, seed: int = 0) -> N.SmallVGG:
    torch.manual_seed(seed)
    net = N.SmallVGG(1, 10, TINY, m=m, kind=kind)
    P.train(net, data, 1, 0.05, _cfg(), seed)
    return net


# --------------------------------------------------------------------------- data


def test_digits_are_upsampled_standardised_and_split_by_class(digits):
    assert digits.x_train.shape[1:] == (1, 16, 16) and digits.x_train.dtype == np.float32
    assert len(digits.y_train) + len(digits.y_test) == 1797
    assert abs(float(digits.x_train.mean())) < 1e-5 and abs(float(digits.x_train.std()) - 1) < 1e-4
    # every 2×2 block is one pixel of the 8×8 original
    assert np.array_equal(digits.x_train[:, :, ::2, ::2], digits.x_train[:, :, 1::2, 1::2])
    counts = np.bincount(digits.y_test, minlength=10)
    full = np.bincount(np.concatenate([digits.y_train, digits.y_test]), minlength=10)
    assert np.array_equal(counts, np.round(0.2 * full).astype(int))  # stratified
    again = E.load_digits()
    assert np.array_equal(again.x_test, digits.x_test) and np.array_equal(again.y_train, digits.y_train)


@pytest.mark.parametrize("size", [0, 12, 7, True])
def test_digits_refuse_a_size_that_is_not_a_multiple_of_8(size):
    with pytest.raises(ValueError, match="size must be a positive multiple of 8"):
        E.load_digits(size)


def _write_cifar(root, n_per_batch: int = 6, seed: int = 0) -> list[tuple[np.ndarray, list[int]]]:
    """A tiny data set in the CIFAR-10 python format (dicts of bytes keys, uint8 N×3072)."""
    rng = np.random.default_rng(seed)
    written = []
    for name in E.data.CIFAR10_FILES:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        with open(root / name, "wb") as fh:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": labels}, fh)
        written.append((data, labels))
    return written


def test_cifar10_loader_reads_the_python_pickle_format(tmp_path):
    written = _write_cifar(tmp_path)
    ds = E.load_cifar10(tmp_path)
    assert ds.x_train.shape == (30, 3, 32, 32) and ds.x_test.shape == (6, 3, 32, 32)
    assert ds.y_train.tolist() == sum((lab for _, lab in written[:-1]), [])
    assert ds.y_test.tolist() == written[-1][1]
    # image 0 of batch 1, red channel, standardised with the training set's red mean and std
    red = np.concatenate([d for d, _ in written[:-1]])[:, :1024].astype(np.float64) / 255
    expect = (written[0][0][0, :1024] / 255 - red.mean()) / red.std()
    np.testing.assert_allclose(ds.x_train[0, 0].ravel(), expect, rtol=1e-5, atol=1e-5)
    assert E.load("cifar10", tmp_path).x_test.shape == ds.x_test.shape


def test_cifar10_loader_names_the_missing_file_and_refuses_a_bad_one(tmp_path):
    _write_cifar(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        E.load_cifar10(tmp_path)
    (tmp_path / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="data_batch_3.*not a CIFAR-10"):
        E.load_cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        E.load_cifar10(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="needs path"):
        E.load("cifar10")


# --------------------------------------------------------------------------- the methods


def _pruned_layers(net: N.SmallVGG, cfg: E.PruneConfig) -> list[int]:
    return list(range(0 if cfg.prune_first else 1, len(net.convs)))


@pytest.mark.parametrize("method", ["spatial", "winograd", "winograd_position", "winograd_relu"])
@pytest.mark.parametrize("density", [0.3, 0.05])
def test_each_method_reaches_its_target_density_within_one_element_per_layer_or_position(small, method, density):
    cfg = _cfg()
    base = _trained(small, "winograd_relu" if method == "winograd_relu" else "spatial")
    net, spatial_masks = P.prune_network(base, method, density, small, cfg, seed=1)
    if method == "spatial":  # the first layer stays dense
        assert 0 not in spatial_masks and torch.all(net.convs[0].weight != 0)  # (fine-tuned, not pruned)
    else:
        assert net.convs[0].density == 1.0
    for i in _pruned_layers(net, cfg):
        conv = net.convs[i]
        if method == "spatial":
            kept, size = int(spatial_masks[i].sum()), conv.weight.numel()
        else:
            kept, size = int(conv.mask.sum()), conv.mask.numel()
        if method == "winograd_position":
            # its groups are the positions: within one element of round(d·K·C) in every one
            per_pos = conv.mask.sum(dim=(1, 2))
            assert torch.all(per_pos == kept_count(density, conv.mask[0].numel()))
            assert abs(kept - density * size) <= conv.mask.shape[0] / 2
        else:
            assert abs(kept - density * size) <= 1, (i, kept, density * size)


@pytest.mark.parametrize("method", ["spatial", "winograd", "winograd_relu", "filter+winograd"])
def test_fine_tuning_never_revives_a_pruned_weight(small, method):
    cfg = _cfg(finetune_epochs=2)
    base = _trained(small, "winograd_relu" if method == "winograd_relu" else "spatial")
    net, spatial_masks = P.prune_network(base, method, 0.2, small, cfg, seed=2)
    for i in _pruned_layers(net, cfg):
        conv = net.convs[i]
        mask = spatial_masks[i] if method == "spatial" else conv.mask
        w = conv.weight.detach()
        assert torch.all(w[~mask] == 0)  # exactly zero, not small
        assert int((w != 0).sum()) == int(mask.sum())  # the kept ones were trained, none lost
    # ... and the fine-tuning did train: the kept weights moved from their pruned values
    pruned_only = P.prune_network(base, method, 0.2, small, P.config_with(cfg, finetune_epochs=0), seed=2)[0]
    moved = [float((a.weight - b.weight).detach().abs().max()) for a, b in zip(net.convs[1:], pruned_only.convs[1:])]
    assert min(moved) > 0


def _norms(w: torch.Tensor) -> np.ndarray:
    return w.detach().to(torch.float64).flatten(1).norm(dim=1).numpy()


@pytest.mark.parametrize("kind", ["spatial", "winograd_relu"])
def test_filter_pruning_removes_the_lowest_norm_filters_and_the_next_layers_inputs(small, kind):
    net = _trained(small, kind).double()
    keep = 0.5
    pruned, kept = N.drop_filters(net, keep)
    prev = None
    for conv, new, k in zip(net.convs, pruned.convs, kept):
        w = conv.weight.detach()
        if kind != "spatial":
            w = w.permute(1, 0, 2)  # K × α² × C
        if prev is not None:
            w = w[:, :, prev] if kind != "spatial" else w[:, prev]
        norms = _norms(w)
        n_keep = kept_count(keep, len(norms))
        assert len(k) == n_keep == new.out_channels
        assert set(k.tolist()) == set(np.argsort(-norms, kind="stable")[:n_keep].tolist())  # the largest norms
        assert new.in_channels == (1 if prev is None else len(prev))
        prev = k
    assert pruned.fc.in_features == len(prev) * net.final_size**2
    # the pruned network computes the masked unpruned one: dropped filters' weights AND biases zero
    masked = N.SmallVGG(1, 10, TINY, m=2, kind=kind).double()
    masked.load_state_dict(net.state_dict())
    with torch.no_grad():
        for conv, k in zip(masked.convs, kept):
            drop = np.setdiff1d(np.arange(conv.out_channels), k)
            if kind == "spatial":
                conv.weight[drop] = 0
            else:  # U is α²×K×C
                conv.weight[:, drop] = 0
            conv.bias[drop] = 0
    x = torch.from_numpy(small.x_test[:16]).double()
    with torch.no_grad():
        y_pruned, y_masked = pruned(x).numpy(), masked(x).numpy()
    tol = len(net.convs) * tolerance(np.float64, 2, 3, 9 * max(net.channels))
    assert rel_err(y_pruned, y_masked) <= tol
    assert rel_err(y_pruned, net(x).detach().numpy()) > 100 * tol  # the pruning did change the function


def test_filter_then_winograd_keeps_d_of_each_layers_original_u(small):
    cfg = _cfg()  # filter_keep 0.75: TINY's 4, 4, 8 filters become 3, 3, 6
    base = _trained(small)
    net, _ = P.prune_network(base, "filter+winograd", 0.3, small, cfg, seed=5)
    assert net.channels == [3, 3, 6]
    alpha2 = 16
    for i in _pruned_layers(net, cfg):
        original = alpha2 * base.convs[i].out_channels * base.convs[i].in_channels
        assert abs(int(net.convs[i].mask.sum()) - 0.3 * original) <= 1
        assert torch.all(net.convs[i].weight.detach()[~net.convs[i].mask] == 0)


def test_filter_then_winograd_refuses_a_density_filter_pruning_already_passed(small):
    # filter_keep 0.5 leaves 2·2 / (4·4) = 0.25 of conv2: a target of 0.3 cannot be reached
    with pytest.raises(ValueError, match=r"densities \[0.3\] are above the 0.250 of conv2"):
        E.run(_cfg(methods=("filter+winograd",), densities=(1.0, 0.3), filter_keep=0.5), small)


def test_winograd_relu_network_moves_the_relu_into_the_winograd_domain(small):
    wr, sp = N.SmallVGG(1, 10, TINY, kind="winograd_relu"), N.SmallVGG(1, 10, TINY, kind="spatial")
    assert [c.relu for c in wr.convs] == [None, "winograd", "winograd"]
    x = torch.from_numpy(small.x_test[:8])
    wr_inputs, sp_inputs = wr.conv_inputs(x), sp.conv_inputs(x)
    # no spatial ReLU between Winograd-ReLU layers; one after every standard layer
    assert all(bool((a < 0).any()) for a in wr_inputs[1:])
    assert all(bool((a >= 0).all()) for a in sp_inputs[1:])


def test_filter_method_keeps_round_d_k_filters_per_layer(small):
    base = _trained(small)
    net, _ = P.prune_network(base, "filter", 0.5, small, _cfg(), seed=3)
    assert net.channels == [kept_count(0.5, c) for c in base.channels]


# --------------------------------------------------------------------------- counts


def _inputs_by_hook(net: N.SmallVGG, x: np.ndarray) -> list[np.ndarray]:
    """Each conv's input, captured by forward pre-hooks (not by SmallVGG.conv_inputs)."""
    seen: list[np.ndarray] = []
    hooks = [c.register_forward_pre_hook(lambda _m, a: seen.append(a[0].detach().numpy().copy()))
             for c in net.convs]
    with torch.no_grad():
        net(torch.from_numpy(x))
    for h in hooks:
        h.remove()
    return seen


def _check_counts(res: E.PruneResult, x: np.ndarray, m: int) -> None:
    """Every row's counts equal magma_wino.cost of its network's actual U and ReLU(V) for x."""
    for row in res.rows:
        net = res.networks[(row["m"], row["method"], row["target_density"])]
        total = 0.0
        for i, (conv, inp) in enumerate(zip(net.convs, _inputs_by_hook(net, x))):
            geom = {"N": len(x), "C": conv.in_channels, "K": conv.out_channels, "spatial_size": inp.shape[2:],
                    "m": m, "padding": 1, "bias": True}
            if not isinstance(conv, WinogradDomainConv2d):
                lc = cost.layer_cost(**geom, variant="spatial")  # U = G w Gᵀ is dense
            elif conv.relu == "winograd":
                V = reference.input_transform(inp, m, 3, padding=1, relu=True)
                lc = cost.layer_cost(**geom, variant="winograd_relu", U=conv.mask.numpy(), V=V)
                assert row["layers"][i]["activation_density"] == pytest.approx(float((V != 0).mean()))
            else:
                lc = cost.layer_cost(**geom, variant="winograd", U=conv.mask.numpy())
            assert row["layers"][i]["mults_per_image"] == pytest.approx(lc.mults / len(x), rel=1e-12)
            total += lc.mults / len(x)
        assert row["mults_per_image"] == pytest.approx(total, rel=1e-12)


def test_2_4_method_keeps_two_of_every_four_input_channels_in_one_row(small):
    """winograd_2:4 runs once, at its pattern's density 0.5, whatever the densities; every
    pruned layer keeps at most 2 of every 4 consecutive input channels of each U[b] row, and
    its modules are marked for the sparse tensor-core product."""
    res = E.run(_cfg(methods=("winograd_2:4",), densities=(1.0, 0.2), cost_images=16), small,
                keep_networks=True)
    (row,) = res.rows
    assert (row["method"], row["target_density"]) == ("winograd_2:4", 0.5)
    net = res.networks[(2, "winograd_2:4", 0.5)]
    for i, conv in enumerate(net.convs):
        mask = conv.mask.numpy()
        C = mask.shape[2]
        pad = np.pad(mask, ((0, 0), (0, 0), (0, -C % 4)))
        counts = pad.reshape(*mask.shape[:2], -1, 4).sum(-1)
        assert counts.max() <= 2, i
        if C % 4 == 0:
            assert mask.mean() == 0.5 and conv.structure == "2:4"
    _check_counts(res, small.x_test[:16], 2)


def test_report_counts_equal_cost_of_the_actual_u_and_measured_activations(small):
    cfg = _cfg(methods=("spatial", "winograd", "winograd_relu", "filter"), densities=(1.0, 0.2), cost_images=32)
    res = E.run(cfg, small, keep_networks=True)
    assert len(res.rows) == 8
    _check_counts(res, small.x_test[:32], 2)
    # the baseline: the unpruned network's direct convolution, C·9 per output, the same in every row
    sizes, c_in = [16, 16, 8], [1, 4, 4]
    direct = sum(9 * c * k * s * s for c, k, s in zip(c_in, [4, 4, 8], sizes))
    assert {r["direct_mults_per_image"] for r in res.rows} == {direct}
    by = {(r["method"], r["target_density"]): r for r in res.rows}
    # densities reached, counted independently: U of conv1 dense, the others round(0.2·α²·K·C)
    u = [16 * k * c for k, c in zip([4, 4, 8], c_in)]
    assert by["winograd", 0.2]["weight_density"] == (u[0] + sum(kept_count(0.2, n) for n in u[1:])) / sum(u)
    k2 = [kept_count(0.2, k) for k in (4, 4, 8)]  # filters: 1, 1, 2
    w2 = [9 * k * c for k, c in zip(k2, [1, *k2[:-1]])]
    assert by["filter", 0.2]["weight_density"] == sum(w2) / sum(9 * k * c for k, c in zip([4, 4, 8], c_in))
    assert [ly["weight_density"] for ly in by["filter", 0.2]["layers"]] == pytest.approx(
        [w / (9 * k * c) for w, k, c in zip(w2, [4, 4, 8], c_in)])
    # spatial pruning saves nothing in the Winograd layer (U dense again); Winograd-domain pruning does
    assert by["spatial", 0.2]["mults_per_image"] == by["spatial", 1.0]["mults_per_image"]
    assert by["winograd", 0.2]["mults_per_image"] < 0.5 * by["winograd", 1.0]["mults_per_image"]
    # Winograd-ReLU skips zero activations: fewer products than the same density without it
    assert by["winograd_relu", 0.2]["activation_density"] < 1.0
    assert by["winograd_relu", 1.0]["mults_per_image"] < by["winograd", 1.0]["mults_per_image"]


def test_prune_config_names_the_bad_field():
    for kw, name in (({"methods": ("magic",)}, "methods"), ({"densities": (0.0,)}, "densities"),
                     ({"tiles": (0,)}, "tiles"), ({"schedule": "weekly"}, "schedule"), ({"epochs": 0}, "epochs"),
                     ({"filter_keep": 1.5}, "filter_keep")):
        with pytest.raises(ValueError, match=name):
            E.PruneConfig(**kw).check()


def test_iterative_schedule_prunes_in_geometric_steps_to_the_target():
    cfg = E.PruneConfig(schedule="iterative", steps=3)
    steps = P._schedule(0.125, cfg)
    assert steps == pytest.approx([0.5, 0.25, 0.125])
    assert P._schedule(0.3, E.PruneConfig()) == [0.3]


# --------------------------------------------------------------------------- the --quick run


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("quick") / "out.json"
    assert cli.main(["experiment", "prune", "--quick", "--no-progress", "--json", str(path)]) == 0
    return json.loads(path.read_text())


def test_quick_run_reports_every_method_and_density_offline(quick):
    cfg = quick["config"]
    assert cfg["data"] == "digits" and cfg["tiles"] == [2]
    got = {(r["method"], r["target_density"]) for r in quick["rows"]}
    assert got == {(m, d) for m in E.METHODS if m not in E.FIXED_DENSITY for d in cfg["densities"]} | {
        (m, d) for m, d in E.FIXED_DENSITY.items()}
    for r in quick["rows"]:
        assert 0 <= r["accuracy"] <= 1 and 0 < r["weight_density"] <= 1 and r["mults_per_image"] > 0
        assert (r["activation_density"] is not None) == (r["method"] == "winograd_relu")
        assert r["mult_reduction"] == pytest.approx(r["direct_mults_per_image"] / r["mults_per_image"])


def test_quick_run_dense_networks_learn(quick):
    dense = [r for r in quick["rows"] if r["target_density"] == 1.0]
    assert min(r["accuracy"] for r in dense) > QUICK_DENSE_ACCURACY_FLOOR


def test_quick_run_is_deterministic(quick, tmp_path):
    # the same command for two of its methods and one density: the same numbers, to the bit
    # (each method's runs are seeded by their own coordinates, not by what else runs)
    path = tmp_path / "again.json"
    assert cli.main(["experiment", "prune", "--quick", "--no-progress", "--methods", "winograd", "filter",
                     "--densities", "0.3", "--json", str(path)]) == 0
    again = json.loads(path.read_text())["rows"]
    first = {(r["method"], r["target_density"]): r for r in quick["rows"]}
    assert len(again) == 2
    for r in again:
        assert r == first[(r["method"], r["target_density"])]


@pytest.mark.parametrize("method", ["spatial", "winograd", "filter"])
def test_iterative_schedule_reaches_the_target_and_only_ever_removes_weights(small, method):
    cfg = _cfg(schedule="iterative", steps=2, finetune_epochs=1)
    base = _trained(small)
    # the schedule to 0.25 in 2 steps prunes to 0.5 first, then fine-tunes with the same seed as a
    # one-shot prune to 0.5 does: that network is its first step
    one_step, _ = P.prune_network(base, method, 0.5, small, P.config_with(cfg, schedule="oneshot"), seed=4)
    assert P._schedule(0.25, cfg) == pytest.approx([0.5, 0.25])
    net, spatial_masks = P.prune_network(base, method, 0.25, small, cfg, seed=4)
    if method == "filter":  # 0.5 of the filters, then 0.5 of those: round(0.5·round(0.5·K))
        assert net.channels == [kept_count(0.5, kept_count(0.5, c)) for c in base.channels]
        return
    for i in _pruned_layers(net, cfg):
        conv = net.convs[i]
        mask = spatial_masks[i] if method == "spatial" else conv.mask
        assert abs(int(mask.sum()) - 0.25 * mask.numel()) <= 1
        assert torch.all(conv.weight.detach()[~mask] == 0)
    # iterative pruning only removes: the final pattern lies inside the first step's
    first = one_step.convs[1].weight.detach() != 0
    assert torch.all(first | (net.convs[1].weight.detach() == 0))
    assert int((net.convs[1].weight.detach() != 0).sum()) < int(first.sum())


def test_f4x4_winograd_relu_rows_count_exactly_too(small):
    res = E.run(_cfg(tiles=(4,), methods=("winograd_relu",), densities=(0.3,), cost_images=16), small,
                keep_networks=True)
    (row,) = res.rows
    assert row["m"] == 4 and abs(row["weight_density"] - (36 * 4 + 0.3 * 36 * (16 + 32)) / (36 * 52)) < 2 / 36 / 52
    _check_counts(res, small.x_test[:16], 4)


@pytest.mark.parametrize("kw, name", [({"train_images": 0}, "train_images"), ({"test_images": -3}, "test_images"),
                                      ({"seed": -1}, "seed"), ({"widths": (4, "M")}, "widths")])
def test_prune_config_refuses_bad_subsets_seeds_and_one_layer_networks(kw, name):
    with pytest.raises(ValueError, match=name):
        E.PruneConfig(**kw).check()


def test_cli_checks_the_output_directory_before_training(tmp_path, capsys):
    missing = tmp_path / "no" / "out.json"
    assert cli.main(["experiment", "prune", "--quick", "--json", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: a negative seed is a usage error
        cli.main(["experiment", "prune", "--seed", "-1"])


def test_scale_to_unit_output_gives_every_convolution_unit_output_std(small):
    net = N.SmallVGG(1, 10, TINY, m=4, kind="winograd_relu")
    x = torch.from_numpy(small.x_train[:64])
    N.scale_to_unit_output(net, x)
    h = x
    with torch.no_grad():
        for i, conv in enumerate(net.convs):
            y = conv(h)
            assert float(y.std()) == pytest.approx(1.0, rel=1e-4)
            h = net.between(i, y)
