//! Code generation: the bodies of import adapters, exports, post-returns and
//! the per-type memory helpers, as calls to the interpreter's push/pop
//! interface.
//!
//! Values sit either in flat wasm locals ([`Loc::Flat`], canonical ABI
//! flattening, variant payloads joined) or in linear memory ([`Loc::Mem`],
//! canonical ABI layout). Flat values are handled inline. Compound values in
//! memory go through one helper function per type and direction
//! (`(cx, addr) -> ()`), shared by every function and list loop that needs
//! it, which keeps the module small for worlds that reuse types.

use crate::module::{Helper, Intrinsic, ModuleBuilder};
use crate::plan::{Plan, Side};
use wasm_encoder::{BlockType, Function, InstructionSink, MemArg, ValType};
use wit_parser::abi::{FlatTypes, WasmType};
use wit_parser::{FlagsRepr, Handle, Int, Resolve, Type, TypeDefKind};

pub fn val_type(t: WasmType) -> ValType {
    match t {
        WasmType::I32 | WasmType::Pointer | WasmType::Length => ValType::I32,
        WasmType::I64 | WasmType::PointerOrI64 => ValType::I64,
        WasmType::F32 => ValType::F32,
        WasmType::F64 => ValType::F64,
    }
}

/// Flat types of `ty`; only called where the canonical ABI flattens, so
/// at most 16 values.
fn flat(resolve: &Resolve, ty: &Type) -> Vec<ValType> {
    let mut storage = [WasmType::I32; 17];
    let mut out = FlatTypes::new(&mut storage);
    resolve.push_flat(ty, &mut out);
    out.to_vec().into_iter().map(val_type).collect()
}

#[derive(Clone, Copy)]
pub struct Local {
    pub idx: u32,
    pub ty: ValType,
}

/// Where a value lives.
#[derive(Clone)]
pub enum Loc {
    Flat(Vec<Local>),
    Mem { addr: u32, offset: u32 },
}

/// How a scalar is read from or written to memory.
#[derive(Clone, Copy)]
enum Access {
    U8,
    S8,
    U16,
    S16,
    I32,
    I64,
    F32,
    F64,
}

impl Access {
    fn natural(self) -> ValType {
        match self {
            Access::I64 => ValType::I64,
            Access::F32 => ValType::F32,
            Access::F64 => ValType::F64,
            _ => ValType::I32,
        }
    }

    fn for_int(int: Int) -> Access {
        match int {
            Int::U8 => Access::U8,
            Int::U16 => Access::U16,
            Int::U32 => Access::I32,
            Int::U64 => Access::I64,
        }
    }
}

fn memarg(offset: u32, align: u32) -> MemArg {
    MemArg {
        offset: offset.into(),
        align,
        target: wasm_encoder::MemArgTarget::Memory(0),
        ordering: None,
    }
}

/// A compound type's cases, for variants, options and results alike.
struct Cases {
    tag: Int,
    types: Vec<Option<Type>>,
}

/// Generates one function body.
pub struct Emitter<'p, 'a> {
    pub plan: &'p Plan<'a>,
    pub module: &'p mut ModuleBuilder,
    side: Side,
    code: Vec<u8>,
    nparams: u32,
    locals: Vec<ValType>,
    free: Vec<Local>,
    cx: u32,
    /// Address of a 4-byte scratch slot (`fp` local + offset) for the
    /// out-pointer of `pop_string`/`pop_list` when the destination is flat.
    temp: Option<(u32, u32)>,
}

impl<'p, 'a> Emitter<'p, 'a> {
    pub fn new(plan: &'p Plan<'a>, module: &'p mut ModuleBuilder, side: Side, params: u32) -> Self {
        Emitter {
            plan,
            module,
            side,
            code: Vec::new(),
            nparams: params,
            locals: Vec::new(),
            free: Vec::new(),
            cx: 0,
            temp: None,
        }
    }

    pub fn set_cx(&mut self, local: u32) {
        self.cx = local;
    }

    pub fn set_temp(&mut self, fp: u32, offset: u32) {
        self.temp = Some((fp, offset));
    }

    pub fn ins(&mut self) -> InstructionSink<'_> {
        InstructionSink::new(&mut self.code)
    }

    pub fn local(&mut self, ty: ValType) -> Local {
        if let Some(pos) = self.free.iter().position(|l| l.ty == ty) {
            return self.free.swap_remove(pos);
        }
        self.locals.push(ty);
        Local {
            idx: self.nparams + self.locals.len() as u32 - 1,
            ty,
        }
    }

    pub fn release(&mut self, local: Local) {
        self.free.push(local);
    }

    pub fn call(&mut self, i: Intrinsic) {
        let idx = i as u32;
        self.ins().call(idx);
    }

    fn get_cx(&mut self) {
        let cx = self.cx;
        self.ins().local_get(cx);
    }

    /// Pushes `addr + offset`.
    fn address(&mut self, addr: u32, offset: u32) {
        self.ins().local_get(addr);
        if offset != 0 {
            self.ins().i32_const(offset as i32);
            self.ins().i32_add();
        }
    }

    pub fn finish(mut self) -> Function {
        self.ins().end();
        let mut f = Function::new_with_locals_types(self.locals);
        f.raw(self.code);
        f
    }

    fn resolve(&self) -> &'a Resolve {
        self.plan.resolve
    }

    fn index(&self, ty: &Type) -> i32 {
        self.plan.code(self.side, ty).index() as i32
    }

    /// Splits a location into consecutive fields.
    pub fn fields(&self, loc: &Loc, types: &[Type]) -> Vec<Loc> {
        match loc {
            Loc::Flat(locals) => {
                let mut rest = &locals[..];
                types
                    .iter()
                    .map(|t| {
                        let n = flat(self.resolve(), t).len();
                        let (now, later) = rest.split_at(n);
                        rest = later;
                        Loc::Flat(now.to_vec())
                    })
                    .collect()
            }
            Loc::Mem { addr, offset } => self
                .plan
                .sizes
                .field_offsets(types)
                .into_iter()
                .map(|(off, _)| Loc::Mem {
                    addr: *addr,
                    offset: offset + off.size_wasm32() as u32,
                })
                .collect(),
        }
    }

    /// Pushes a scalar read from `loc` as its natural wasm type.
    fn load(&mut self, loc: &Loc, access: Access) {
        match loc {
            Loc::Flat(locals) => {
                let l = locals[0];
                self.ins().local_get(l.idx);
                convert(&mut self.ins(), l.ty, access.natural());
            }
            Loc::Mem { addr, offset } => {
                let (addr, offset) = (*addr, *offset);
                self.ins().local_get(addr);
                let mut i = self.ins();
                match access {
                    Access::U8 => i.i32_load8_u(memarg(offset, 0)),
                    Access::S8 => i.i32_load8_s(memarg(offset, 0)),
                    Access::U16 => i.i32_load16_u(memarg(offset, 1)),
                    Access::S16 => i.i32_load16_s(memarg(offset, 1)),
                    Access::I32 => i.i32_load(memarg(offset, 2)),
                    Access::I64 => i.i64_load(memarg(offset, 3)),
                    Access::F32 => i.f32_load(memarg(offset, 2)),
                    Access::F64 => i.f64_load(memarg(offset, 3)),
                };
            }
        }
    }

    /// Stores a scalar to `loc`: `value` emits the natural-typed value.
    fn store(&mut self, loc: &Loc, access: Access, value: impl FnOnce(&mut Self)) {
        match loc {
            Loc::Flat(locals) => {
                let l = locals[0];
                value(self);
                convert(&mut self.ins(), access.natural(), l.ty);
                self.ins().local_set(l.idx);
            }
            Loc::Mem { addr, offset } => {
                let (addr, offset) = (*addr, *offset);
                self.ins().local_get(addr);
                value(self);
                let mut i = self.ins();
                match access {
                    Access::U8 | Access::S8 => i.i32_store8(memarg(offset, 0)),
                    Access::U16 | Access::S16 => i.i32_store16(memarg(offset, 1)),
                    Access::I32 => i.i32_store(memarg(offset, 2)),
                    Access::I64 => i.i64_store(memarg(offset, 3)),
                    Access::F32 => i.f32_store(memarg(offset, 2)),
                    Access::F64 => i.f64_store(memarg(offset, 3)),
                };
            }
        }
    }

    /// Lifts the value of type `ty` at `loc` and pushes it onto the
    /// interpreter's stack. Compound values in memory are delegated to their
    /// helper unless `expand` (the helper's own body).
    pub fn lift(&mut self, ty: &Type, loc: &Loc, expand: bool) {
        use Intrinsic as I;
        let scalar = |me: &mut Self, access: Access, push: I| {
            me.get_cx();
            me.load(loc, access);
            me.call(push);
        };
        match ty {
            Type::Bool => scalar(self, Access::U8, I::PushBool),
            Type::U8 => scalar(self, Access::U8, I::PushU8),
            Type::S8 => scalar(self, Access::S8, I::PushS8),
            Type::U16 => scalar(self, Access::U16, I::PushU16),
            Type::S16 => scalar(self, Access::S16, I::PushS16),
            Type::U32 => scalar(self, Access::I32, I::PushU32),
            Type::S32 => scalar(self, Access::I32, I::PushS32),
            Type::U64 => scalar(self, Access::I64, I::PushU64),
            Type::S64 => scalar(self, Access::I64, I::PushS64),
            Type::F32 => scalar(self, Access::F32, I::PushF32),
            Type::F64 => scalar(self, Access::F64, I::PushF64),
            Type::Char => scalar(self, Access::I32, I::PushChar),
            Type::String => {
                let parts = self.fields(loc, &[Type::U32, Type::U32]);
                self.get_cx();
                self.load(&parts[0], Access::I32);
                self.load(&parts[1], Access::I32);
                self.call(I::PushString);
            }
            Type::ErrorContext => unreachable!("refused by the plan"),
            Type::Id(id) => {
                let kind = &self.resolve().types[*id].kind;
                if let (Loc::Mem { addr, offset }, false, true) = (loc, expand, is_compound(kind)) {
                    let (addr, offset) = (*addr, *offset);
                    let helper = self.module.helper(self.plan, Helper::Lift, self.side, *ty);
                    self.get_cx();
                    self.address(addr, offset);
                    self.ins().call(helper);
                    return;
                }
                self.lift_def(ty, kind, loc);
            }
        }
    }

    fn lift_def(&mut self, ty: &Type, kind: &TypeDefKind, loc: &Loc) {
        use Intrinsic as I;
        let index = self.index(ty);
        match kind {
            TypeDefKind::Type(t) => self.lift(t, loc, false),
            TypeDefKind::Record(r) => {
                let types: Vec<Type> = r.fields.iter().map(|f| f.ty).collect();
                self.lift_all(&types, loc);
                self.push_indexed(I::PushRecord, index);
            }
            TypeDefKind::Tuple(t) => {
                self.lift_all(&t.types, loc);
                self.push_indexed(I::PushTuple, index);
            }
            TypeDefKind::Flags(f) => {
                self.get_cx();
                self.ins().i32_const(index);
                match flags_access(f.repr()) {
                    Some(access) => self.load(loc, access),
                    None => {
                        self.ins().i32_const(0);
                    }
                }
                self.call(I::PushFlags);
            }
            TypeDefKind::Enum(e) => {
                self.get_cx();
                self.ins().i32_const(index);
                self.load(loc, Access::for_int(e.tag()));
                self.call(I::PushEnum);
            }
            TypeDefKind::Handle(h) => {
                let push = match h {
                    Handle::Own(_) => I::PushOwn,
                    Handle::Borrow(_) => I::PushBorrow,
                };
                self.get_cx();
                self.ins().i32_const(index);
                self.load(loc, Access::I32);
                self.call(push);
            }
            TypeDefKind::Variant(_) | TypeDefKind::Option(_) | TypeDefKind::Result(_) => {
                let (cases, push) = cases(kind);
                self.lift_cases(&cases, loc, push, index);
            }
            TypeDefKind::List(elem) => self.lift_list(std::slice::from_ref(elem), loc, index),
            TypeDefKind::Map(k, v) => self.lift_list(&[*k, *v], loc, index),
            TypeDefKind::Resource
            | TypeDefKind::FixedLengthList(..)
            | TypeDefKind::Future(_)
            | TypeDefKind::Stream(_)
            | TypeDefKind::Unknown => unreachable!("refused by the plan"),
        }
    }

    fn lift_all(&mut self, types: &[Type], loc: &Loc) {
        for (t, l) in types.iter().zip(self.fields(loc, types)) {
            self.lift(t, &l, false);
        }
    }

    fn push_indexed(&mut self, i: Intrinsic, index: i32) {
        self.get_cx();
        self.ins().i32_const(index);
        self.call(i);
    }

    /// Where the discriminant and each case's payload live.
    fn case_locs(&self, cases: &Cases, loc: &Loc) -> (Loc, Vec<Loc>, Vec<Local>) {
        match loc {
            Loc::Flat(locals) => {
                let payload = locals[1..].to_vec();
                let locs = cases
                    .types
                    .iter()
                    .map(|t| {
                        let n = t.as_ref().map_or(0, |t| flat(self.resolve(), t).len());
                        Loc::Flat(payload[..n].to_vec())
                    })
                    .collect();
                (Loc::Flat(vec![locals[0]]), locs, payload)
            }
            Loc::Mem { addr, offset } => {
                let off = self
                    .plan
                    .sizes
                    .payload_offset(cases.tag, cases.types.iter().map(|t| t.as_ref()))
                    .size_wasm32() as u32;
                let payload = Loc::Mem {
                    addr: *addr,
                    offset: offset + off,
                };
                (
                    Loc::Mem {
                        addr: *addr,
                        offset: *offset,
                    },
                    vec![payload; cases.types.len()],
                    Vec::new(),
                )
            }
        }
    }

    /// Emits a branch per case: `body(self, case)` for each, dispatching on
    /// the i32 in `discr`. Two cases branch on zero/non-zero (as the
    /// canonical ABI treats bool-like discriminants); more use `br_table`
    /// and trap on an out-of-range discriminant.
    fn dispatch(&mut self, n: usize, discr: Local, mut body: impl FnMut(&mut Self, usize)) {
        match n {
            1 => body(self, 0),
            2 => {
                self.ins().local_get(discr.idx);
                self.ins().if_(BlockType::Empty);
                body(self, 1);
                self.ins().else_();
                body(self, 0);
                self.ins().end();
            }
            _ => {
                // block $done { block $trap { block $c(n-1) ... { block $c0 {
                //   br_table } case0; br $done } case1; br $done } ... } unreachable }
                self.ins().block(BlockType::Empty);
                self.ins().block(BlockType::Empty);
                for _ in 0..n {
                    self.ins().block(BlockType::Empty);
                }
                self.ins().local_get(discr.idx);
                let targets: Vec<u32> = (0..n as u32).collect();
                self.ins().br_table(targets, n as u32);
                for case in 0..n {
                    self.ins().end();
                    body(self, case);
                    // Remaining: blocks of later cases, $trap, $done.
                    self.ins().br((n - 1 - case) as u32 + 1);
                }
                self.ins().end();
                self.ins().unreachable();
                self.ins().end();
            }
        }
    }

    fn lift_cases(&mut self, cases: &Cases, loc: &Loc, push: Intrinsic, index: i32) {
        let (discr_loc, payloads, _) = self.case_locs(cases, loc);
        let discr = self.local(ValType::I32);
        self.load(&discr_loc, Access::for_int(cases.tag));
        self.ins().local_set(discr.idx);
        self.dispatch(cases.types.len(), discr, |me, case| {
            if let Some(t) = &cases.types[case] {
                me.lift(t, &payloads[case], false);
            }
            me.get_cx();
            me.ins().i32_const(index);
            me.ins().i32_const(case as i32);
            me.call(push);
        });
        self.release(discr);
    }

    /// Lists (one element type) and maps (key and value types).
    fn lift_list(&mut self, elem: &[Type], loc: &Loc, index: i32) {
        use Intrinsic as I;
        let is_map = elem.len() == 2;
        let layout = self.plan.sizes.record(elem);
        let (size, align) = (
            layout.size.size_wasm32() as u32,
            layout.align.align_wasm32() as u32,
        );
        let parts = self.fields(loc, &[Type::U32, Type::U32]);
        let ptr = self.local(ValType::I32);
        let len = self.local(ValType::I32);
        self.load(&parts[0], Access::I32);
        self.ins().local_set(ptr.idx);
        self.load(&parts[1], Access::I32);
        self.ins().local_set(len.idx);

        self.get_cx();
        self.ins().i32_const(index);
        if is_map {
            self.ins().local_get(len.idx);
            self.call(I::PushMap);
        } else {
            self.ins().local_get(ptr.idx);
            self.ins().local_get(len.idx);
            self.call(I::PushList);
            // `true`: the interpreter took the canonical buffer as is.
            self.ins().i32_eqz();
            self.ins().if_(BlockType::Empty);
        }
        let append = if is_map { I::MapAppend } else { I::ListAppend };
        self.each_element(ptr, len, size, |me, at| {
            let locs = me.fields(
                &Loc::Mem {
                    addr: at.idx,
                    offset: 0,
                },
                elem,
            );
            for (t, l) in elem.iter().zip(&locs) {
                me.lift(t, l, false);
            }
            me.push_indexed(append, index);
        });
        if size != 0 {
            // Elements were copied out one by one: free the buffer now.
            self.ins().local_get(len.idx);
            self.ins().if_(BlockType::Empty);
            self.get_cx();
            self.ins().local_get(ptr.idx);
            self.ins().local_get(len.idx);
            self.ins().i32_const(size as i32);
            self.ins().i32_mul();
            self.ins().i32_const(align as i32);
            self.ins().i32_const(0);
            self.call(I::DeallocBytes);
            self.ins().end();
        }
        if !is_map {
            self.ins().end();
        }
        self.release(ptr);
        self.release(len);
    }

    /// Runs `body` with a local holding each element's address in turn.
    fn each_element(
        &mut self,
        ptr: Local,
        len: Local,
        size: u32,
        body: impl FnOnce(&mut Self, Local),
    ) {
        let at = self.local(ValType::I32);
        let left = self.local(ValType::I32);
        self.ins().local_get(ptr.idx);
        self.ins().local_set(at.idx);
        self.ins().local_get(len.idx);
        self.ins().local_set(left.idx);
        self.ins().block(BlockType::Empty);
        self.ins().loop_(BlockType::Empty);
        self.ins().local_get(left.idx);
        self.ins().i32_eqz();
        self.ins().br_if(1);
        body(self, at);
        self.ins().local_get(at.idx);
        self.ins().i32_const(size as i32);
        self.ins().i32_add();
        self.ins().local_set(at.idx);
        self.ins().local_get(left.idx);
        self.ins().i32_const(1);
        self.ins().i32_sub();
        self.ins().local_set(left.idx);
        self.ins().br(0);
        self.ins().end();
        self.ins().end();
        self.release(at);
        self.release(left);
    }

    /// Pops a value of type `ty` from the interpreter and writes it to `loc`.
    pub fn lower(&mut self, ty: &Type, loc: &Loc, expand: bool) {
        use Intrinsic as I;
        let scalar = |me: &mut Self, access: Access, pop: I| {
            me.store(loc, access, |me| {
                me.get_cx();
                me.call(pop);
            });
        };
        match ty {
            Type::Bool => scalar(self, Access::U8, I::PopBool),
            Type::U8 => scalar(self, Access::U8, I::PopU8),
            Type::S8 => scalar(self, Access::S8, I::PopS8),
            Type::U16 => scalar(self, Access::U16, I::PopU16),
            Type::S16 => scalar(self, Access::S16, I::PopS16),
            Type::U32 => scalar(self, Access::I32, I::PopU32),
            Type::S32 => scalar(self, Access::I32, I::PopS32),
            Type::U64 => scalar(self, Access::I64, I::PopU64),
            Type::S64 => scalar(self, Access::I64, I::PopS64),
            Type::F32 => scalar(self, Access::F32, I::PopF32),
            Type::F64 => scalar(self, Access::F64, I::PopF64),
            Type::Char => scalar(self, Access::I32, I::PopChar),
            Type::String => {
                let parts = self.fields(loc, &[Type::U32, Type::U32]);
                self.lower_with_out_ptr(&parts, |me, out| {
                    me.get_cx();
                    out(me);
                    me.call(I::PopString);
                });
            }
            Type::ErrorContext => unreachable!("refused by the plan"),
            Type::Id(id) => {
                let kind = &self.resolve().types[*id].kind;
                if let (Loc::Mem { addr, offset }, false, true) = (loc, expand, is_compound(kind)) {
                    let (addr, offset) = (*addr, *offset);
                    let helper = self.module.helper(self.plan, Helper::Lower, self.side, *ty);
                    self.get_cx();
                    self.address(addr, offset);
                    self.ins().call(helper);
                    return;
                }
                self.lower_def(ty, kind, loc);
            }
        }
    }

    /// For `pop_string`/`pop_list`: `call` pushes the length, having been
    /// given (through `out`) an address where the interpreter writes the
    /// pointer. In memory that is the destination's pointer field itself; in
    /// flat locals it is the frame's scratch slot.
    fn lower_with_out_ptr(
        &mut self,
        parts: &[Loc],
        call: impl FnOnce(&mut Self, &dyn Fn(&mut Self)),
    ) {
        match &parts[0] {
            Loc::Mem { addr, offset } => {
                let (addr, offset) = (*addr, *offset);
                self.store(&parts[1], Access::I32, |me| {
                    call(me, &|me: &mut Self| me.address(addr, offset));
                });
            }
            Loc::Flat(_) => {
                let (fp, off) = self
                    .temp
                    .expect("flat string/list lowering has a scratch slot");
                self.store(&parts[1], Access::I32, |me| {
                    call(me, &|me: &mut Self| me.address(fp, off));
                });
                self.store(&parts[0], Access::I32, |me| {
                    me.ins().local_get(fp);
                    me.ins().i32_load(memarg(off, 2));
                });
            }
        }
    }

    fn lower_def(&mut self, ty: &Type, kind: &TypeDefKind, loc: &Loc) {
        use Intrinsic as I;
        let index = self.index(ty);
        match kind {
            TypeDefKind::Type(t) => self.lower(t, loc, false),
            TypeDefKind::Record(r) => {
                self.push_indexed(I::PopRecord, index);
                let types: Vec<Type> = r.fields.iter().map(|f| f.ty).collect();
                self.lower_all(&types, loc);
            }
            TypeDefKind::Tuple(t) => {
                self.push_indexed(I::PopTuple, index);
                self.lower_all(&t.types, loc);
            }
            TypeDefKind::Flags(f) => match flags_access(f.repr()) {
                Some(access) => self.store(loc, access, |me| me.push_indexed(I::PopFlags, index)),
                None => {
                    self.push_indexed(I::PopFlags, index);
                    self.ins().drop();
                }
            },
            TypeDefKind::Enum(e) => self.store(loc, Access::for_int(e.tag()), |me| {
                me.push_indexed(I::PopEnum, index)
            }),
            TypeDefKind::Handle(h) => {
                let pop = match h {
                    Handle::Own(_) => I::PopOwn,
                    Handle::Borrow(_) => I::PopBorrow,
                };
                self.store(loc, Access::I32, |me| me.push_indexed(pop, index));
            }
            TypeDefKind::Variant(_) | TypeDefKind::Option(_) | TypeDefKind::Result(_) => {
                let (cases, push) = cases(kind);
                let pop = match push {
                    I::PushVariant => I::PopVariant,
                    I::PushOption => I::PopOption,
                    _ => I::PopResult,
                };
                self.lower_cases(&cases, loc, pop, index);
            }
            TypeDefKind::List(elem) => self.lower_list(std::slice::from_ref(elem), loc, index),
            TypeDefKind::Map(k, v) => self.lower_list(&[*k, *v], loc, index),
            TypeDefKind::Resource
            | TypeDefKind::FixedLengthList(..)
            | TypeDefKind::Future(_)
            | TypeDefKind::Stream(_)
            | TypeDefKind::Unknown => unreachable!("refused by the plan"),
        }
    }

    fn lower_all(&mut self, types: &[Type], loc: &Loc) {
        for (t, l) in types.iter().zip(self.fields(loc, types)) {
            self.lower(t, &l, false);
        }
    }

    fn lower_cases(&mut self, cases: &Cases, loc: &Loc, pop: Intrinsic, index: i32) {
        let (discr_loc, payloads, all_payload) = self.case_locs(cases, loc);
        let discr = self.local(ValType::I32);
        self.push_indexed(pop, index);
        if cases.types.len() == 2 {
            // Bool-like: any non-zero answer means the second case.
            self.ins().i32_const(0);
            self.ins().i32_ne();
        }
        self.ins().local_set(discr.idx);
        self.store(&discr_loc, Access::for_int(cases.tag), |me| {
            me.ins().local_get(discr.idx);
        });
        self.dispatch(cases.types.len(), discr, |me, case| {
            let used = match (&cases.types[case], &payloads[case]) {
                (Some(t), l) => {
                    me.lower(t, l, false);
                    if let Loc::Flat(ls) = l { ls.len() } else { 0 }
                }
                (None, _) => 0,
            };
            // Flat payload slots this case does not use are zeroed, so the
            // call's arguments never depend on stale locals.
            for l in &all_payload[used..] {
                zero(&mut me.ins(), l.ty);
                me.ins().local_set(l.idx);
            }
        });
        self.release(discr);
    }

    fn lower_list(&mut self, elem: &[Type], loc: &Loc, index: i32) {
        use Intrinsic as I;
        let is_map = elem.len() == 2;
        let layout = self.plan.sizes.record(elem);
        let (size, align) = (
            layout.size.size_wasm32() as u32,
            layout.align.align_wasm32() as u32,
        );
        let parts = self.fields(loc, &[Type::U32, Type::U32]);
        let ptr = self.local(ValType::I32);
        let len = self.local(ValType::I32);
        if is_map {
            self.push_indexed(I::PopMap, index);
            self.ins().local_set(len.idx);
            self.ins().i32_const(0);
            self.ins().local_set(ptr.idx);
        } else {
            // The interpreter either writes a pointer to data already in
            // canonical layout, or NULL and then yields elements one by one.
            let out = match &parts[0] {
                Loc::Mem { addr, offset } => (*addr, *offset),
                Loc::Flat(_) => self.temp.expect("flat list lowering has a scratch slot"),
            };
            self.get_cx();
            self.ins().i32_const(index);
            self.address(out.0, out.1);
            self.call(I::PopList);
            self.ins().local_set(len.idx);
            self.ins().local_get(out.0);
            self.ins().i32_load(memarg(out.1, 2));
            self.ins().local_set(ptr.idx);
        }
        self.ins().local_get(ptr.idx);
        self.ins().i32_eqz();
        self.ins().if_(BlockType::Empty);
        {
            let bytes = self.local(ValType::I32);
            self.ins().local_get(len.idx);
            self.ins().i32_const(size as i32);
            self.ins().i32_mul();
            self.ins().local_tee(bytes.idx);
            // An empty list needs no allocation, only an aligned pointer.
            self.ins().if_(BlockType::Result(ValType::I32));
            self.ins().i32_const(0);
            self.ins().i32_const(0);
            self.ins().i32_const(align as i32);
            self.ins().local_get(bytes.idx);
            self.call(I::CabiRealloc);
            self.ins().else_();
            self.ins().i32_const(align as i32);
            self.ins().end();
            self.ins().local_set(ptr.idx);
            let next = if is_map {
                I::PopMapIterNext
            } else {
                I::PopListIterNext
            };
            self.each_element(ptr, len, size, |me, at| {
                me.push_indexed(next, index);
                let locs = me.fields(
                    &Loc::Mem {
                        addr: at.idx,
                        offset: 0,
                    },
                    elem,
                );
                for (t, l) in elem.iter().zip(&locs) {
                    me.lower(t, l, false);
                }
            });
            // The buffer must outlive this call: the interpreter frees it
            // when the call's context ends.
            self.ins().local_get(bytes.idx);
            self.ins().if_(BlockType::Empty);
            self.get_cx();
            self.ins().local_get(ptr.idx);
            self.ins().local_get(bytes.idx);
            self.ins().i32_const(align as i32);
            self.ins().i32_const(1);
            self.call(I::DeallocBytes);
            self.ins().end();
            let done = if is_map {
                I::PopMapIter
            } else {
                I::PopListIter
            };
            self.push_indexed(done, index);
            self.release(bytes);
        }
        self.ins().end();
        self.store(&parts[0], Access::I32, |me| {
            me.ins().local_get(ptr.idx);
        });
        self.store(&parts[1], Access::I32, |me| {
            me.ins().local_get(len.idx);
        });
        self.release(ptr);
        self.release(len);
    }
}

/// Types whose memory form is handled by a shared helper function.
fn is_compound(kind: &TypeDefKind) -> bool {
    matches!(
        kind,
        TypeDefKind::Record(_)
            | TypeDefKind::Tuple(_)
            | TypeDefKind::Variant(_)
            | TypeDefKind::Option(_)
            | TypeDefKind::Result(_)
            | TypeDefKind::List(_)
            | TypeDefKind::Map(..)
    )
}

fn cases(kind: &TypeDefKind) -> (Cases, Intrinsic) {
    match kind {
        TypeDefKind::Variant(v) => (
            Cases {
                tag: v.tag(),
                types: v.cases.iter().map(|c| c.ty).collect(),
            },
            Intrinsic::PushVariant,
        ),
        TypeDefKind::Option(t) => (
            Cases {
                tag: Int::U8,
                types: vec![None, Some(*t)],
            },
            Intrinsic::PushOption,
        ),
        TypeDefKind::Result(r) => (
            Cases {
                tag: Int::U8,
                types: vec![r.ok, r.err],
            },
            Intrinsic::PushResult,
        ),
        _ => unreachable!(),
    }
}

fn flags_access(repr: FlagsRepr) -> Option<Access> {
    match repr {
        FlagsRepr::U8 => Some(Access::U8),
        FlagsRepr::U16 => Some(Access::U16),
        FlagsRepr::U32(0) => None,
        FlagsRepr::U32(_) => Some(Access::I32),
    }
}

/// Converts the value on top of the wasm stack between a flat slot's type
/// and a value's natural type (variant payloads share joined slots).
fn convert(i: &mut InstructionSink<'_>, from: ValType, to: ValType) {
    use ValType::*;
    match (from, to) {
        (a, b) if a == b => {}
        (I64, I32) => {
            i.i32_wrap_i64();
        }
        (I32, I64) => {
            i.i64_extend_i32_u();
        }
        (I32, F32) => {
            i.f32_reinterpret_i32();
        }
        (F32, I32) => {
            i.i32_reinterpret_f32();
        }
        (I64, F32) => {
            i.i32_wrap_i64().f32_reinterpret_i32();
        }
        (F32, I64) => {
            i.i32_reinterpret_f32().i64_extend_i32_u();
        }
        (I64, F64) => {
            i.f64_reinterpret_i64();
        }
        (F64, I64) => {
            i.i64_reinterpret_f64();
        }
        (a, b) => unreachable!("no canonical ABI join between {a:?} and {b:?}"),
    }
}

fn zero(i: &mut InstructionSink<'_>, ty: ValType) {
    match ty {
        ValType::I32 => i.i32_const(0),
        ValType::I64 => i.i64_const(0),
        ValType::F32 => i.f32_const(0.0.into()),
        ValType::F64 => i.f64_const(0.0.into()),
        _ => unreachable!(),
    };
}

/// Whether lowering `ty` into flat locals needs the scratch slot.
pub fn needs_scratch(resolve: &Resolve, ty: &Type) -> bool {
    match ty {
        Type::String => true,
        Type::Id(id) => match &resolve.types[*id].kind {
            TypeDefKind::List(_) | TypeDefKind::Map(..) => true,
            TypeDefKind::Type(t) | TypeDefKind::Option(t) => needs_scratch(resolve, t),
            TypeDefKind::Record(r) => r.fields.iter().any(|f| needs_scratch(resolve, &f.ty)),
            TypeDefKind::Tuple(t) => t.types.iter().any(|t| needs_scratch(resolve, t)),
            TypeDefKind::Variant(v) => v
                .cases
                .iter()
                .filter_map(|c| c.ty.as_ref())
                .any(|t| needs_scratch(resolve, t)),
            TypeDefKind::Result(r) => {
                r.ok.iter()
                    .chain(r.err.iter())
                    .any(|t| needs_scratch(resolve, t))
            }
            _ => false,
        },
        _ => false,
    }
}
