"""mri_core.training.lesions: LGG lesions cut through their masks and pasted into other brains,
intensity and size matched, soft-edged, inside the host's brain only."""

import numpy as np
import pytest

from mri_core.training import lesions as L


def disc_slice(size=96, radius=36, level=0.4, seed=0, centre=None):
    """A grey 'brain' (a noisy disc) on a black background, and its disc mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    cy, cx = centre or (size // 2, size // 2)
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
    image = np.where(disc, level + rng.normal(0, 0.03, (size, size)), 0.0)
    return np.clip(image, 0, 1).astype(np.float32), disc


@pytest.fixture(scope="module")
def donor():
    """A donor FLAIR slice: brain at 0.3, a bright lesion (0.3 + 0.3) of 12 px radius, its mask."""
    flair, brain = disc_slice(level=0.3, seed=1)
    yy, xx = np.mgrid[0:96, 0:96]
    mask = (yy - 40) ** 2 + (xx - 55) ** 2 <= 12 ** 2
    flair[mask] += 0.3
    return flair, mask, brain


def test_brain_mask_finds_the_head_and_nothing_on_a_blank_slice():
    image, disc = disc_slice()
    found = L.brain_mask(image)
    assert (found & disc).sum() / (found | disc).sum() > 0.95
    assert not L.brain_mask(np.zeros((64, 64), np.float32)).any()
    assert not L.brain_mask(np.full((64, 64), 0.5, np.float32)).any()


def test_a_cut_lesion_keeps_its_contrast_its_share_and_a_soft_edge(donor):
    flair, mask, brain = donor
    lesion = L.cut_lesion(flair, mask)
    assert lesion.brain_share == pytest.approx(mask.sum() / brain.sum(), rel=0.05)
    inside = lesion.alpha > 0.99
    assert lesion.z[inside].mean() == pytest.approx(0.3 / 0.03, rel=0.25)  # 0.3 above a brain of spread 0.03
    assert ((lesion.alpha > 0.05) & (lesion.alpha < 0.95)).sum() > 20  # feathered, not a hard edge
    assert L.cut_lesion(flair, np.zeros_like(mask)) is None


def test_a_pasted_lesion_lies_inside_the_host_brain_at_the_hosts_level(donor):
    flair, mask, _ = donor
    lesion = L.cut_lesion(flair, mask)
    host_gray, host_brain = disc_slice(size=128, radius=50, level=0.6, seed=2)
    host = np.repeat(host_gray[..., None], 3, axis=-1)
    out = L.paste_lesion(np.random.default_rng(0), host, lesion, size_jitter=0.0)
    assert out.shape == host.shape and np.allclose(out, out[..., :1])  # grey stays grey
    changed = np.abs(out[..., 0] - host_gray) > 0.05
    assert changed.any() and not (changed & ~host_brain).any()  # nothing outside the brain
    # Size: the donor's share of its brain, of the host's brain (edges feathered: within 40 %).
    assert changed.sum() / host_brain.sum() == pytest.approx(lesion.brain_share, rel=0.4)
    # Intensity: the host's mean plus the donor's contrast in the host's spread (0.6 + 10 * 0.03), clipped at 1.
    core = out[..., 0][changed].max()
    assert core > 0.85


def test_pasting_is_seeded_and_passes_over_hosts_without_a_brain(donor):
    flair, mask, _ = donor
    bank = [L.cut_lesion(flair, mask)]
    host = np.repeat(disc_slice(size=96, radius=40, level=0.5, seed=3)[0][..., None], 1, axis=-1)
    hosts = np.stack([host, np.zeros_like(host)])
    a, used_a = L.paste_into(np.random.default_rng(5), hosts, bank, 4)
    b, used_b = L.paste_into(np.random.default_rng(5), hosts, bank, 4)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 96, 96, 1) and set(used_a) == {0}  # the blank host never takes a lesion
    assert L.paste_into(np.random.default_rng(0), hosts[1:], bank, 3)[0].shape == (0, 96, 96, 1)


def test_lesion_bank_reads_training_patients_only(synthetic_data):
    from mri_core.io.folders import list_lgg

    patients = sorted({s.patient_id for s in list_lgg(synthetic_data["lgg"])})
    bank = L.lesion_bank(synthetic_data["lgg"], set(patients[:2]), limit=10, seed=0, min_px=50)
    assert len(bank) == 4  # 2 patients x 2 tumour slices (every other of 5)
    assert all(0 < les.brain_share < 0.2 for les in bank)
    assert L.lesion_bank(synthetic_data["lgg"], set(), limit=10, seed=0, min_px=50) == []
