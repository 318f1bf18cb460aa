"""A picture that can't be drawn for a study or a model, and the sentence that says why: the
report shows that sentence in the picture's place, never an empty image."""


class Unavailable(Exception):
    """Raised by a picture function; ``str(e)`` is the reason, a sentence for the reader."""
