# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Draws docs/images/architecture.png, the README's first picture: the shared
encoder, the feature extractor, the task heads and the adversarial branch, with
the fairseq names of each part (model ``xlt_model``, criterion
``xlt_multitask_adversarial``, task ``xlt_multitask``).

    python docs/images/make_architecture.py        # needs matplotlib (xlt_fairseq[report])
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "architecture.png")

BLUE, GREEN, RED, GREY = "#dbe8f6", "#dcefdc", "#f8dcdc", "#eeeeee"
EDGE = {BLUE: "#3b6ea8", GREEN: "#3c8a3c", RED: "#b23a3a", GREY: "#777777"}


def box(ax, x, y, w, h, color, title, lines=(), size=10.5):
    ax.add_patch(
        FancyBboxPatch(
            (x, y), w, h, boxstyle="round,pad=0.004,rounding_size=0.015", fc=color, ec=EDGE[color], lw=1.4
        )
    )
    text = title if not lines else title + "\n" + "\n".join(lines)
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size, linespacing=1.35)
    return (x, y, w, h)


def arrow(ax, start, end, color="#444444", style="-|>", text=None, text_xy=None, lw=1.4, ls="-"):
    ax.add_patch(
        FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=13, color=color, lw=lw, linestyle=ls)
    )
    if text:
        ax.text(*text_xy, text, ha="center", va="center", fontsize=9.5, color=color)


def main():
    fig = plt.figure(figsize=(12.5, 5.0), dpi=110)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 0.44)
    ax.axis("off")

    box(ax, 0.01, 0.19, 0.13, 0.13, GREY, "text in any\nlanguage", ["en, sw, yo, zu, ...", "XLM-R sentencepiece"])
    box(
        ax,
        0.18,
        0.13,
        0.17,
        0.25,
        BLUE,
        "shared pretrained\nencoder",
        ["XLM-R or multilingual-e5", "(fairseq RoBERTa encoder)", "", "--pretrained-encoder DIR", "--freeze-layers N"],
    )
    box(
        ax,
        0.39,
        0.19,
        0.14,
        0.13,
        BLUE,
        "feature extractor",
        ["h + GELU(W h + b)", "W = 0 at start"],
    )
    heads = [
        ("NER tagger", "tokens -> BIO tags, seqeval F1", r"$\alpha_{ner}\,L_{ner}$"),
        ("sentiment classifier", "mean pool -> label, acc / macro-F1", r"$\alpha_{sent}\,L_{sent}$"),
        ("translation decoder", "TransformerDecoder, fairseq-generate", r"$\alpha_{mt}\,L_{mt}$"),
        ("masked LM head", "tied to the embeddings", r"$\alpha_{mlm}\,L_{mlm}$"),
    ]
    y0, dy, hh = 0.36, 0.078, 0.06
    for i, (title, sub, loss) in enumerate(heads):
        y = y0 - i * dy
        box(ax, 0.60, y, 0.22, hh, GREEN, title, [sub], size=9.5)
        arrow(ax, (0.535, 0.255), (0.598, y + hh / 2), color=EDGE[GREEN])
        ax.text(0.835, y + hh / 2, loss, ha="left", va="center", fontsize=11)
    # adversarial branch
    box(ax, 0.375, 0.015, 0.17, 0.08, RED, "gradient reversal", [r"forward $x$, backward $-\lambda\,g$"], size=9.5)
    discriminator = ["predicts each example's language or domain"]
    box(ax, 0.60, 0.015, 0.22, 0.08, RED, "language / domain discriminator", discriminator, size=9.5)
    ax.text(0.835, 0.055, r"$w_{adv}\,L_{adv}$", ha="left", va="center", fontsize=11)
    arrow(ax, (0.46, 0.186), (0.46, 0.099), color=EDGE[RED], text="pooled", text_xy=(0.49, 0.14))
    arrow(ax, (0.549, 0.055), (0.598, 0.055), color=EDGE[RED])
    # main path
    arrow(ax, (0.142, 0.255), (0.178, 0.255))
    arrow(ax, (0.352, 0.255), (0.388, 0.255))
    # the loss
    ax.text(
        0.945,
        0.23,
        "criterion\nxlt_multitask_\nadversarial\n\n" + r"$L = \sum_t \alpha_t L_t$" + "\n" + r"$+\; w_{adv} L_{adv}$",
        ha="center",
        va="center",
        fontsize=10.5,
        linespacing=1.4,
    )
    ax.text(
        0.01,
        0.055,
        "every update: a sub-batch of\nevery task (round robin)\n"
        "task xlt_multitask\nmodel xlt_model",
        ha="left",
        va="center",
        fontsize=9.5,
        color="#555555",
        linespacing=1.4,
    )
    fig.savefig(OUT, dpi=110, facecolor="white")
    print(OUT)


if __name__ == "__main__":
    main()
