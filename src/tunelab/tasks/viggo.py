"""ViGGO: video-game sentences -> meaning representations (structured output).

Input is the sentence (`ref`), target the meaning representation (`mr`). Splits are
the official train/validation/test CSV files. Scored by exact MR match (function and
attribute set, order-insensitive) and slot precision/recall/F1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tunelab.data.readers import DataError, Example, field_str, read_records
from tunelab.tasks.base import Splits, Task

INSTRUCTION = """\
Convert the sentence about a video game into a meaning representation.
Output exactly one line of the form function(attribute[value], attribute[value], ...).
function is one of: inform, request, give_opinion, confirm, verify_attribute, suggest, \
request_explanation, recommend, request_attribute.
attributes: name, release_year, exp_release_date, developer, esrb, rating, genres, \
player_perspective, platforms, available_on_steam, has_linux_release, has_mac_release, \
has_multiplayer, specifier.
Use only facts stated in the sentence. Output nothing else."""

SHORT_INSTRUCTION = "Convert the sentence into a ViGGO meaning representation."


def _read(path, errors: list[DataError] | None = None) -> list[Example]:
    out = []
    for line, rec in read_records(path, errors):
        where = f"{path}:{line}"
        try:
            ex = Example(field_str(rec, "ref", where), field_str(rec, "mr", where),
                         id=f"{path.name}:{line}", meta={"line": line})
        except DataError as e:
            if errors is None:
                raise
            errors.append(e)
            continue
        out.append(ex)
    return out


@dataclass
class Viggo(Task):
    name: str = "viggo"
    folder: str = "viggo"
    instruction: str = INSTRUCTION
    short_instruction: str = SHORT_INSTRUCTION
    max_new_tokens: int = 88  # longest reference MR is 80 tokens
    one_line: bool = True
    metric_names: list[str] = field(
        default_factory=lambda: ["slot_f1", "mr_exact", "slot_precision", "slot_recall"]
    )
    # Slot F1 is primary: a 135M model rarely gets a whole MR exactly right, so exact
    # match alone would call every arm a tie; mr_exact is reported beside it.
    primary: str = "slot_f1"

    def splits(self) -> Splits:
        root = self.root()
        return Splits(
            train=_read(root / "train.csv"),
            validation=_read(root / "validation.csv"),
            test=_read(root / "test.csv"),
            source=f"files: {root}/{{train,validation,test}}.csv",
        )

    def read_file(self, path, errors=None) -> list[Example]:
        return _read(path, errors)

    def describe(self) -> str:
        return "sentence -> video-game meaning representation (structured output); mr_exact, slot F1"
