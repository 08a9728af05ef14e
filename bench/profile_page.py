"""cProfile around the predict page's runs (AppTest, real models in models/): an upload, then reruns.

    python -m bench.profile_page          # times only
    python -m bench.profile_page profile  # and the top of the profile of each run
"""
import cProfile, io, os, pstats, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
from bench.harness import ROOT
root = str(ROOT)
PROFILE = len(sys.argv) > 1
from streamlit.testing.v1 import AppTest
from streamlit.runtime.scriptrunner import script_runner as sr
_orig = sr.ScriptRunner._run_script
PROF = []
def _wrapped(self, *a, **k):  # the page runs in the script runner's thread: profile there
    pr = cProfile.Profile(); pr.enable()
    try:
        return _orig(self, *a, **k)
    finally:
        pr.disable(); PROF.append(pr)
sr.ScriptRunner._run_script = _wrapped
at = AppTest.from_file(f"{root}/app.py", default_timeout=600)
at.run(); at.switch_page("views/predict.py"); at.run()
key = next(u.key for u in at.file_uploader)
scan = f"{root}/samples/brain_tumor/meningioma/Tr-me_0394.jpg"
data = open(scan, "rb").read()
def timed(label, fn, profile=False):
    PROF.clear()
    t = time.perf_counter()
    fn()
    dt = time.perf_counter() - t
    assert not at.exception, at.exception
    print(f"{label}: {dt*1000:.0f} ms")
    if profile:
        s = io.StringIO(); st_ = pstats.Stats(PROF[-1], stream=s); st_.sort_stats("cumulative").print_stats(40)
        out = s.getvalue(); print(out[out.index("ncalls"):][:9000])
# warm-up upload with another file (graph tracing, first Grad-CAM)
warm = open(f"{root}/samples/brain_tumor/glioma/" + sorted(os.listdir(f"{root}/samples/brain_tumor/glioma"))[0], "rb").read()
timed("warm-up upload", lambda: at.file_uploader(key=key).upload("warm.jpg", warm).run())
at.file_uploader(key=key).set_value([]).run()
timed("upload (new file)", lambda: at.file_uploader(key=key).upload("scan.jpg", data).run(), profile=PROFILE)
timed("rerun (same file)", lambda: at.run(), profile=PROFILE)
timed("rerun 2", lambda: at.run())
