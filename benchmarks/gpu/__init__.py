"""The GPU check of issue 21: one command (``python -m benchmarks.gpu``) that measures, side by
side in one run, what the project's changes do to a training step and how Ray Tune runs a real
sweep on one GPU. Each part is its own module and calls the product through its public functions:

``step``        the AttnMel-CNN-Lesion step (``attnmel.step.train_step``) before and after each
                change (conv biases folded into batch norm, fused SGD, the backbone compiled),
                with correctness checks (fold equal in float64 on the device, compiled vs eager
                within a stated tolerance); evaluation batch sizes and ``runtime.eval_test``;
                where the step's kernel time goes
``trial``       ``attnmel train`` on the real data for 5 epochs: start-up, epoch seconds, the
                projected 50-epoch trial
``sweep``       ``attnmel sweep run`` under Ray Tune: 8 AttnMel-CNN-Lesion trials (4 seeds × 2 λ)
                at ``resources.gpus: 0.25``, then at ``gpus: 1``: aggregate images/s, every trial
                TERMINATED, the tables, peak GPU memory per trial, GPU utilisation, the time
                before the first epoch
``cuda_tests``  ``pytest -m cuda``
``capacity``    issue 34: one trial's peak device memory per variant family, dataset size and
                batch (each case its own process), aggregate images/s with 1/2/4/8 trials
                sharing the card, and the ``resources.gpus`` that fits (not in the default
                parts: ``--parts capacity``, its own device run)

``--cpu-smoke`` runs every part (capacity included) at toy sizes on the CPU (what
``tests/benchmarks`` does). See ``docs/gpu_check.md`` for the command, its options and every key
of the JSON report.
"""

PARTS = ("step", "trial", "sweep", "cuda_tests", "capacity")
DEFAULT_PARTS = ("step", "trial", "sweep", "cuda_tests")  # issue 21's check; capacity runs alone
