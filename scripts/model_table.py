"""Print the model table of docs/models.md from the cards in models/ (validation-split figures)."""

from mri_core import models


def figures(c) -> tuple[str, str]:
    """(validation split, validation figures) as the table writes them."""
    v, split = c.validation, c.split
    if c.is_segmenter:
        figs = (f"Dice/patient {v.dice_patient_mean:.3f}, Dice on tumour slices {v.dice_tumor_slices:.3f}, "
                f"detection AUC {v.detection_auc:.3f}, detection acc. {v.detection_accuracy:.1%}")
        held = f"{len(split.val_patients)} patients, {split.n_val} slices"
    else:
        figs = (f"acc. {v.accuracy:.1%}, balanced acc. {v.balanced_accuracy:.1%}, macro-F1 {v.macro_f1:.3f}, "
                f"AUC {v.auc_macro:.3f}, ECE {v.ece:.3f}")
        held = f"{split.n_val} images, {split.kind.split(' (')[0]}"
    shifted = c.metrics.cross_source_summary
    if shifted:
        figs += (f"; other sources (held-out LGG FLAIR/T1, OASIS; n={shifted.n}): sensitivity {shifted.sensitivity:.3f}, "
                 f"specificity {shifted.specificity:.3f}, abstained {shifted.abstained:.1%}")
    return held, figs


def model_input(c) -> str:
    """What the model is given: size, channels, crop, sequences, brightening."""
    pre = c.preprocessing
    brighten = f", dark slices brightened ≤{pre.intensity.max_gain:g}×" if pre.intensity else ""
    if c.is_segmenter:  # what each segmenter is given: which sequences, one slice at a time
        brighten = (f", {pre.sequence.upper()} only" if pre.sequence else ", pre-contrast + FLAIR + post-contrast") \
            + ", 2-D" + brighten
    return f"{pre.size[0]} px × {pre.channels} ch{', brain crop' if pre.crop else ''}{brighten}"


def main():
    print("| model | task | architecture | input | params | file MB | validation split | validation figures | training |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in models.list_models():
        c = models.read_card(name)
        split, figs = figures(c)
        t = c.training
        print(f"| `{name}`{' (default)' if c.default else ''} | {c.task} | {c.architecture} | {model_input(c)} | {c.params:,} | "
              f"{c.file_mb or 0:.1f} | {split} | {figs} | {t.epochs_run} epochs, {t.seconds / 60:.0f} min, {t.machine} |")


if __name__ == "__main__":
    main()
