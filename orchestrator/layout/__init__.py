"""What a sweep's writers (:mod:`orchestrator.sweep`) and readers (:mod:`orchestrator.results`,
``predict``) share, below both: the results root (:mod:`.root`), a sweep folder's files
(:mod:`.folders`), a trial's params and the config they stand for (:mod:`.params`). Imports
neither of them."""
