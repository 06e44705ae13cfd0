# Label stage (facelm.labels: photo_set, relabel, pose_synthesis): train sets
# the DAG makes from other data -- folders of unlabelled photos framed and labelled by the outside
# teacher (config `photo_sets`, `teacher`), sets relabelled by it (config `relabel`) or turned views
# rendered from a 68-point BFM fit (config `pose_synthesis`). Each is then checked and cached like
# any set.

for _entry, _opts in CFG.photo_sets.items():

    rule:
        """A train set from a folder of photos: detected, framed like the challenge crops, labelled by the teacher."""
        name:
            f"photo_set_{layout.dataset_key(_entry)}"
        input:
            source=_opts["source"],
            weights=Path(CFG.teacher.path) / "mb05_120x120.pth",
        output:
            directory(layout.dataset_folder(CFG, _entry)),
        params:
            teacher=CFG.teacher.spec,
            evaluation=" ".join(f"--eval {shlex.quote(str(d))}" for d in layout.evaluation_folders(CFG, _opts["evaluation"])),
            detector=_opts["detector"],
            min_score=_opts["min_score"],
        log:
            RESULTS / "logs" / f"photo_set_{layout.dataset_key(_entry)}.log",
        threads: 1
        resources:
            mem_mb=4000,
            runtime=60,
        conda:
            "../../envs/facelm.yaml"
        shell:
            "{FACELM} photo-set {input.source} {output} --teacher '{params.teacher}' {params.evaluation}"
            " --detector {params.detector} --min-score {params.min_score} --threads {threads} 2> {log}"


for _entry, _opts in CFG.relabel.items():

    rule:
        """A train set whose points come from the teacher (all 68, the jaw only, or a blend)."""
        name:
            f"relabel_{layout.dataset_key(_entry)}"
        input:
            source=layout.dataset_folder(CFG, _opts["source"]),
            weights=Path(CFG.teacher.path) / "mb05_120x120.pth",
        output:
            directory(layout.dataset_folder(CFG, _entry)),
        params:
            teacher=CFG.teacher.spec,
            points=_opts["points"],
            blend=_opts["blend"],
            evaluation=" ".join(f"--eval {shlex.quote(str(d))}" for d in layout.evaluation_folders(CFG)),
        log:
            RESULTS / "logs" / f"relabel_{layout.dataset_key(_entry)}.log",
        threads: 1
        resources:
            mem_mb=4000,
            runtime=60,
        conda:
            "../../envs/facelm.yaml"
        shell:
            "{FACELM} relabel {input.source} {output} --teacher '{params.teacher}' --points {params.points} {params.evaluation}"
            " --blend {params.blend} --threads {threads} 2> {log}"


for _entry, _opts in CFG.pose_synthesis.items():

    rule:
        """Turned views of a labelled set (face profiling from its 3D fit), labels projected from 3D."""
        name:
            f"synthesize_{layout.dataset_key(_entry)}"
        input:
            source=layout.dataset_folder(CFG, _opts["source"]),
            bases=Path(_opts["bfm"]) / "bfm68_bases.npz",
        output:
            directory(layout.dataset_folder(CFG, _entry)),
        params:
            bfm=_opts["bfm"],
            views=_opts["views"],
            low=_opts["yaw"][0],
            high=_opts["yaw"][1],
            seed=_opts["seed"],
            evaluation=" ".join(f"--eval {shlex.quote(str(d))}" for d in layout.evaluation_folders(CFG)),
        log:
            RESULTS / "logs" / f"synthesize_{layout.dataset_key(_entry)}.log",
        threads: 1
        resources:
            mem_mb=4000,
            runtime=240,
        conda:
            "../../envs/facelm.yaml"
        shell:
            "{FACELM} synthesize-poses {input.source} {output} --bfm {params.bfm} --views {params.views}"
            " --yaw-min {params.low} --yaw-max {params.high} --seed {params.seed} {params.evaluation} 2> {log}"
