"""Linear against MLP heads over the frozen encoder's window embeddings, on the development
split's tuning texts (no source held out): text-level recall at 0.5%, 1% and 5% false positives.

    target/injection-data/train-venv/bin/python scripts/compare_encoder_heads.py

Needs the cached embeddings (`scripts/train-encoder-head` makes them). Exploratory: which head
to build next; the shipped head is trained by `scripts/train-encoder-head`.
"""
import numpy as np
from injection_common import DATA, bucket, load
from injection_embeddings import embeddings
from sklearn.neural_network import MLPClassifier
from sklearn.linear_model import LogisticRegression
dev=load(DATA/"dev.jsonl"); V=embeddings(DATA/"dev.jsonl")
fit=[i for i,r in enumerate(dev) if bucket(r["id"])<80 and not r.get("pair")]
tune=[i for i,r in enumerate(dev) if bucket(r["id"])>=80]
X=np.concatenate([V[i] for i in fit]); y=np.concatenate([np.full(len(V[i]), dev[i]["label"]=="attack") for i in fit])
print(X.shape, y.mean(), flush=True)
def evaluate(score_fn, name):
    s=np.array([score_fn(V[i]).max() for i in tune]); lab=np.array([dev[i]["label"]=="attack" for i in tune])
    b=s[~lab]; a=s[lab]
    for fpr in (0.005,0.01,0.05):
        t=np.quantile(b,1-fpr); print(name, fpr, round(float((a>t).mean()),3), flush=True)
    # short attacks only (not pairs)
    short=np.array([not dev[i].get("pair") for i in tune])[lab]
    t=np.quantile(b,0.99); print(name,"non-pair @1%", round(float((a[short]>t).mean()),3))
w=np.where(y,  (1-y.mean())/y.mean(), 1.0)
m=MLPClassifier(hidden_layer_sizes=(256,), alpha=1e-3, max_iter=60, random_state=0, early_stopping=True)
# oversample positives by repetition for balance
pos=np.where(y)[0]; rep=int(round((1-y.mean())/y.mean()))
idx=np.concatenate([np.arange(len(y))]+[pos]*max(rep-1,0))
m.fit(X[idx], y[idx])
evaluate(lambda e: m.predict_proba(e)[:,1], "mlp")
lr=LogisticRegression(C=100, class_weight="balanced", max_iter=5000, random_state=0).fit(X,y)
evaluate(lambda e: e@lr.coef_[0], "lr")
