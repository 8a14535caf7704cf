# The iresnet network (SPEC.md section 3) in PyTorch, with InsightFace arcface_torch's module
# names, as the reference the C++ engine is cross-checked against (tests/make_fixtures.py).
import torch
from torch import nn
import torch.nn.functional as F

BN_EPS = 2e-5
# MXNet's momentum 0.9 (running = 0.9 * running + 0.1 * batch) is PyTorch's momentum 0.1.
BN_MOMENTUM = 0.1

UNITS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 14, 3], 100: [3, 13, 30, 3]}


class _MXNetRunningVar:
    """Mixin for BatchNorm: in training, update running_var with the *biased* batch variance,
    as MXNet (and our engine) do; PyTorch's own BN uses the unbiased one. Normalisation uses
    the biased variance in both. With mxnet_running_var=False the module is stock PyTorch."""

    mxnet_running_var = True

    def forward(self, x):
        if not (self.training and self.mxnet_running_var):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        with torch.no_grad():
            mean = x.mean(dim=dims)
            var = x.var(dim=dims, unbiased=False)
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(m * mean)
            self.running_var.mul_(1 - m).add_(m * var)
            self.num_batches_tracked.add_(1)
        # Batch statistics for the output; running buffers are not touched here.
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class BatchNorm2d(_MXNetRunningVar, nn.BatchNorm2d):
    pass


class BatchNorm1d(_MXNetRunningVar, nn.BatchNorm1d):
    pass


def bn2d(c):
    return BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class IBasicBlock(nn.Module):
    """Improved residual unit: BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN, plus the
    shortcut of the unit's input (identity, or conv1x1(stride) -> BN). No activation after."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = bn2d(cin)
        self.conv1 = conv3x3(cin, cout)
        self.bn2 = bn2d(cout)
        self.prelu = nn.PReLU(cout)
        self.conv2 = conv3x3(cout, cout, stride)
        self.bn3 = bn2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            bn2d(cout))

    def forward(self, x):
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (self.downsample(x) if self.downsample is not None else x)


class IResNet(nn.Module):
    def __init__(self, depth=50, width=1.0, input_size=112, num_features=512, dropout=0.4):
        super().__init__()
        assert input_size % 16 == 0, "four stride-2 stages need a multiple of 16"
        widths = [int(round(c * width)) for c in (64, 128, 256, 512)]
        self.conv1 = conv3x3(3, widths[0])
        self.bn1 = bn2d(widths[0])
        self.prelu = nn.PReLU(widths[0])
        cin = widths[0]
        for s, (c, n) in enumerate(zip(widths, UNITS[depth])):
            units = []
            for u in range(n):
                units.append(IBasicBlock(cin, c, 2 if u == 0 else 1))
                cin = c
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*units))
        self.bn2 = bn2d(cin)
        self.dropout = nn.Dropout(p=dropout)
        side = input_size // 16
        self.fc = nn.Linear(cin * side * side, num_features)
        self.features = BatchNorm1d(num_features, eps=BN_EPS, momentum=BN_MOMENTUM)
        # Output "E": the last BN has gamma fixed to 1 (MXNet fix_gamma), beta learnt.
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False

    def forward(self, x):
        # Raw 0..255 pixels are normalised inside the network, as in the MXNet symbol.
        x = (x - 127.5) * 0.0078125
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


def set_mxnet_running_var(model, on):
    for m in model.modules():
        if isinstance(m, _MXNetRunningVar):
            m.mxnet_running_var = on
