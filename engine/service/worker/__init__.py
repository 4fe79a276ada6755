"""Runs performed by Celery workers over a Redis broker (DESIGN.md, "Scale-out").

`crownguard serve --broker redis://...` creates each run in the journal and enqueues its run id
(`queue.RunQueue`); `crownguard worker` processes on any number of machines take run ids from
the broker and perform them (`perform.Performer`): claim the run's lease in the journal,
drive it, keep the lease with a heartbeat, let it go. The journal decides who runs what: a
message carries a run id only, a duplicated one finds the run held or ended and does nothing,
a lost one is found again by the sweeper (`sweeper.sweep`), which re-enqueues runs whose lease
lapsed, runs whose message never arrived, and waits that have an answer or expired.
"""
