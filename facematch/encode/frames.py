"""How a video's frames are looked at: sampling rate, detector and smallest face per frame."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from facematch.detect import detectors
from facematch.detect.detectors import DetectorName
from facematch.encode.faces import FaceSettings
from facematch.sources.video import Strategy

log = logging.getLogger("facematch")


@dataclass(frozen=True)
class VideoSettings:
    """How a video is sampled; part of its cache key (with the face settings)."""

    fps: float = 1.0
    strategy: Strategy = "auto"
    # The photo detection fallback (more upsampling, then the CNN detector, on
    # faceless small images) is off for frames unless asked for: a face it
    # would find in one sample is usually found in the next, and it costs
    # 1-3 CPU-s on every faceless frame (docs/guide/video.md).
    fallback: bool = False
    # The detector for frames; None: the photos' own. The command line sets
    # CenterFace when facematch[detector] is installed and --model is not given
    # (see video_detector): it finds the turned and small faces of real footage.
    detector: DetectorName | None = None

    def key(self) -> str:
        # The strategy is not part of it: every strategy samples the same frames.
        # The detector is, through the face settings' key (see base_settings).
        return (
            f"video fps={self.fps!r} fallback={self.fallback} "
            f"face_fraction={MIN_FACE_FRACTION!r} v{VIDEO_VERSION}"
        )

    def base_settings(self, settings: FaceSettings) -> FaceSettings:
        """The run's face settings with this video's detector (its own threshold)."""
        if self.detector is None or self.detector == settings.model:
            return settings
        return replace(settings, model=self.detector, threshold=None)


def video_detector(model_given: bool, model: DetectorName) -> DetectorName | None:
    """The detector for frames when the user did not choose one: CenterFace if
    installed (a warning naming the extra if not); None keeps ``model``."""
    if model_given or model != "hog":
        return None
    if detectors.centerface_available():
        return "centerface"
    log.warning(
        "video frames use HOG, which misses turned and small faces; for CenterFace: %s",
        detectors.EXTRA_HINT,
    )
    return None


# A face smaller than this share of a frame's short side is not looked for,
# unless --min-face-size says otherwise: at 1080p the photo default (48 px)
# costs about 0.9 s of detection per frame, 108 px about 0.2 s (docs/guide/video.md).
MIN_FACE_FRACTION = 0.1
# Bump when sampling changes in a way the settings don't capture.
VIDEO_VERSION = 1


def frame_face_settings(
    settings: FaceSettings, video: VideoSettings, height: int, width: int
) -> FaceSettings:
    """The run's face settings for a frame of this size, with the video defaults
    for the smallest face and the fallback."""
    settings = replace(video.base_settings(settings), fallback=video.fallback)
    if settings.min_face_size is not None:
        return settings
    photo_default = settings.smallest_face(height, width)
    video_default = round(MIN_FACE_FRACTION * min(height, width))
    return replace(settings, min_face_size=max(round(photo_default), video_default))


def video_settings(
    fps: float,
    settings: FaceSettings,
    *,
    videos: bool,
    fallback_given: bool,
    model_given: bool,
) -> VideoSettings:
    """How a run looks at video frames: at ``fps``, with the detection fallback only when
    the user asked for it (``--fallback`` given), and CenterFace (when installed) unless
    the user chose a detector (``--model`` given)."""
    return VideoSettings(
        fps=fps,
        fallback=fallback_given and settings.fallback,
        detector=video_detector(model_given, settings.model) if videos else None,
    )
