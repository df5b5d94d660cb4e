"""Session state of ``minicnn.keras`` (what ``keras.utils.set_random_seed`` sets)."""

#: the seed new Sequential models take when none is given (None: fresh entropy each time)
default_seed = None
