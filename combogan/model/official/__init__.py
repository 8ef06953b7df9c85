"""Everything that exists only to read models trained with the official code: the official
ComboGAN critic and upsampling (networks.py) and the official files' keys mapped to combogan's
(keys.py). `combogan import` (combogan.apps.importing) uses them."""
