"""Hand-picked Stage II candidates (``-o stage2_picks=PICKS.json``), read from a user's file; no torch.

PAM's ``appearance_gen`` (``double_infer.py``) draws Stage II with seeds 42 + j (j < 3; j < 30 for sim) and a
person keeps one candidate per clip. pam-bench cannot make that choice. A user who holds the picks writes them
as one JSON object ``{"<clip id>": j, ...}``; Stage II of that clip then runs seed s + j, where s is the clip's
seed (42 under the official seed policy), and Stage III keeps s. Without the file every clip takes j = 0, PAM's
first candidate. The file's sha256 goes into the run identity.
"""
from __future__ import annotations

import json
from pathlib import Path

from pam_bench.errors import InputError

MAX_CANDIDATES = 30  # double_infer.py draws 30 candidates for sim, 3 otherwise


class Stage2Picks:
    """{clip id: j} from a picks file, checked when read: an object of clip ids to whole numbers 0..29."""

    def __init__(self, path):
        self.path = Path(path).expanduser()
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(self.path, "no such Stage II picks file (-o stage2_picks)") from None
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(self.path, f"cannot read it ({e})") from None
        except json.JSONDecodeError as e:
            raise InputError(self.path, f"is not JSON ({e.msg}, line {e.lineno})") from None
        if not isinstance(data, dict) or not data:
            raise InputError(self.path, 'must be a non-empty JSON object {"<clip id>": j, ...}')
        for clip, j in data.items():
            if isinstance(j, bool) or not isinstance(j, int) or not 0 <= j < MAX_CANDIDATES:
                raise InputError(self.path, f"clip {clip}: the pick must be a whole number 0..{MAX_CANDIDATES - 1} "
                                            f"(Stage II seed = the clip's seed + j), got {j!r}")
        self.picks: dict[str, int] = data

    def offset(self, clip_id: str) -> int:
        """j for this clip; a clip the file does not list is an error naming the file."""
        if clip_id not in self.picks:
            raise InputError(self.path, f"has no pick for clip {clip_id} ({len(self.picks)} clips listed)")
        return self.picks[clip_id]

    def identity(self) -> dict:
        from pam_bench.weights import cached_sha256

        return {"file": self.path.name, "sha256": cached_sha256(self.path), "clips": len(self.picks),
                "rule": "Stage II seed = the clip's seed + j (PAM: 42 + j, picked by hand); Stage III: the clip's seed"}
